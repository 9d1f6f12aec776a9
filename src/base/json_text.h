// Writing JSON text directly into a string, for the hot encoders (OTLP export) where building a
// DOM first would cost more than the encoding itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace beacon::base {

// Appends `s` as a quoted JSON string. Bytes are assumed to be UTF-8 (our inputs come from a
// validating parser); control characters, quotes and backslashes are escaped.
void AppendJsonString(std::string& out, std::string_view s);

// The same without the quotes, for a string written in pieces.
void AppendJsonEscaped(std::string& out, std::string_view s);

// Appends a number the way JSON wants it (no NaN/Inf: those become 0).
void AppendJsonNumber(std::string& out, double v);
void AppendJsonInt(std::string& out, int64_t v);

}  // namespace beacon::base
