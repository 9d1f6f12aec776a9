// UTC timestamps in ISO 8601 with a `Z`, as APIs and Langfuse want them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace beacon::base {

// "2026-08-22T10:15:30Z"
std::string IsoSeconds(int64_t unix_seconds);

// "2026-08-22T10:15:30.410Z"
std::string IsoMillis(int64_t unix_ns);

// Reads "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or with a numeric offset "+hh:mm") into Unix milliseconds;
// nullopt for anything else.
std::optional<int64_t> ParseIsoMillis(std::string_view text);

}  // namespace beacon::base
