#include "api/finish_reason.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <utility>

namespace beacon::api {

std::string_view NormalizeFinishReason(std::string_view native) {
    std::string lower(native);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 17> kMap{{
        {"stop", "stop"},
        {"end_turn", "stop"},
        {"stop_sequence", "stop"},
        {"eos", "stop"},
        {"finish_reason_stop", "stop"},
        {"length", "length"},
        {"max_tokens", "length"},
        {"model_length", "length"},
        {"max_output_tokens", "length"},
        {"tool_calls", "tool_calls"},
        {"tool_use", "tool_calls"},
        {"function_call", "tool_calls"},
        {"content_filter", "content_filter"},
        {"safety", "content_filter"},
        {"recitation", "content_filter"},
        {"blocklist", "content_filter"},
        {"error", "error"},
    }};
    for (const auto& [from, to] : kMap) {
        if (lower == from) return to;
    }
    return "stop";
}

}  // namespace beacon::api
