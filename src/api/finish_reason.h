// Finish reasons: providers say "end_turn", "MAX_TOKENS", "tool_use"...; clients get one of
// stop, length, tool_calls, content_filter, error (OpenRouter's normalisation).
#pragma once

#include <string_view>

namespace beacon::api {

// Maps a provider's raw finish reason to the normalised value. Unknown values map to "stop".
std::string_view NormalizeFinishReason(std::string_view native);

}  // namespace beacon::api
