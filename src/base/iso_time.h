// UTC timestamps in ISO 8601 with a `Z`, as APIs and Langfuse want them.
#pragma once

#include <cstdint>
#include <string>

namespace beacon::base {

// "2026-08-22T10:15:30Z"
std::string IsoSeconds(int64_t unix_seconds);

// "2026-08-22T10:15:30.410Z"
std::string IsoMillis(int64_t unix_ns);

}  // namespace beacon::base
