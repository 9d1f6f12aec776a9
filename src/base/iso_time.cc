#include "base/iso_time.h"

#include <cstdio>
#include <ctime>

namespace beacon::base {
namespace {

// Writes "YYYY-MM-DDTHH:MM:SS" into `buf` and returns its length.
size_t FormatSeconds(int64_t unix_seconds, char* buf, size_t size) {
    std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return std::strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
}

}  // namespace

std::string IsoSeconds(int64_t unix_seconds) {
    char buf[40];
    const size_t n = FormatSeconds(unix_seconds, buf, sizeof(buf));
    std::snprintf(buf + n, sizeof(buf) - n, "Z");
    return buf;
}

std::string IsoMillis(int64_t unix_ns) {
    char buf[40];
    const size_t n = FormatSeconds(unix_ns / 1000000000, buf, sizeof(buf));
    std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>((unix_ns / 1000000) % 1000));
    return buf;
}

}  // namespace beacon::base
