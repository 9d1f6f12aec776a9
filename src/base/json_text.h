// Writing JSON text directly into a string, for the hot encoders (OTLP export) where building a
// DOM first would cost more than the encoding itself.
#pragma once

#include <boost/json/fwd.hpp>
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

// Appends the JSON text of a DOM value: compact, members in their order, as
// boost::json::serialize writes it, within ~10% of its speed, except for doubles. Those are written
// as the shortest text that reads back (0.2, where serialize wrote 2E-1), and NaN and infinities as
// null: Boost.JSON 1.81 parses 1e999 to infinity and serialize then writes `Infinity`, which is
// not JSON (boostorg/json#397, changed in 1.83), so an upstream answer holding such a number was
// relayed as invalid JSON.
void AppendJsonValue(std::string& out, const boost::json::value& v);
void AppendJsonValue(std::string& out, const boost::json::object& v);
void AppendJsonValue(std::string& out, const boost::json::array& v);
std::string JsonText(const boost::json::value& v);
std::string JsonText(const boost::json::object& v);

}  // namespace beacon::base
