#include "api/finish_reason.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace beacon::api {
namespace {

TEST(FinishReasonTest, MapsKnownProviderValues) {
    // Verifies the mapping of every provider-native finish reason Beacon knows.
    const std::vector<std::pair<std::string_view, std::string_view>> cases = {
        {"stop", "stop"},
        {"end_turn", "stop"},
        {"stop_sequence", "stop"},
        {"eos", "stop"},
        {"FINISH_REASON_STOP", "stop"},
        {"length", "length"},
        {"max_tokens", "length"},
        {"MAX_TOKENS", "length"},
        {"model_length", "length"},
        {"max_output_tokens", "length"},
        {"tool_calls", "tool_calls"},
        {"tool_use", "tool_calls"},
        {"function_call", "tool_calls"},
        {"content_filter", "content_filter"},
        {"SAFETY", "content_filter"},
        {"RECITATION", "content_filter"},
        {"BLOCKLIST", "content_filter"},
        {"error", "error"},
    };
    for (const auto& [native, normalized] : cases) {
        EXPECT_EQ(NormalizeFinishReason(native), normalized) << native;
    }
}

TEST(FinishReasonTest, IsCaseInsensitive) {
    // Verifies that case does not matter (Gemini uses upper case, Anthropic lower case).
    EXPECT_EQ(NormalizeFinishReason("End_Turn"), "stop");
    EXPECT_EQ(NormalizeFinishReason("Tool_Use"), "tool_calls");
    EXPECT_EQ(NormalizeFinishReason("LENGTH"), "length");
    EXPECT_EQ(NormalizeFinishReason("Error"), "error");
}

TEST(FinishReasonTest, UnknownValuesMapToStop) {
    // Verifies that unknown, empty or near-miss values map to "stop", not to themselves.
    for (std::string_view v :
         {"", "unknown", "OTHER", "length ", " stop", "max_token", "toolcalls"}) {
        EXPECT_EQ(NormalizeFinishReason(v), "stop") << "[" << v << "]";
    }
}

TEST(FinishReasonTest, ResultsAreAlwaysNormalizedValues) {
    // Verifies that the output is always one of the five OpenRouter values.
    for (std::string_view v : {"stop", "max_tokens", "tool_use", "safety", "error", "weird"}) {
        const std::string out(NormalizeFinishReason(v));
        EXPECT_TRUE(out == "stop" || out == "length" || out == "tool_calls" ||
                    out == "content_filter" || out == "error")
            << out;
    }
}

}  // namespace
}  // namespace beacon::api
