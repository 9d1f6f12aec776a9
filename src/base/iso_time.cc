#include "base/iso_time.h"

#include <charconv>
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

std::optional<int64_t> ParseIsoMillis(std::string_view s) {
    // Fixed positions: 0123456789012345678
    //                  YYYY-MM-DDTHH:MM:SS
    auto num = [&](size_t pos, size_t len, int& out) {
        if (pos + len > s.size()) return false;
        for (size_t i = pos; i < pos + len; ++i) {
            if (s[i] < '0' || s[i] > '9') return false;
        }
        return std::from_chars(s.data() + pos, s.data() + pos + len, out).ec == std::errc();
    };
    int year, month, day, hour, minute, second;
    if (s.size() < 20 || !num(0, 4, year) || s[4] != '-' || !num(5, 2, month) || s[7] != '-' ||
        !num(8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, hour) ||
        s[13] != ':' || !num(14, 2, minute) || s[16] != ':' || !num(17, 2, second)) {
        return std::nullopt;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
        return std::nullopt;
    }
    size_t pos = 19;
    int64_t millis = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        int digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (digits < 3) millis = millis * 10 + (s[pos] - '0');
            ++digits;
            ++pos;
        }
        if (digits == 0) return std::nullopt;
        for (int i = digits; i < 3; ++i) millis *= 10;
    }
    int64_t offset_s = 0;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
        // UTC
    } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
        int oh, om;
        if (!num(pos + 1, 2, oh) || !num(pos + 4, 2, om) || oh > 23 || om > 59) {
            return std::nullopt;
        }
        offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    } else {
        return std::nullopt;
    }
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    const int64_t t = static_cast<int64_t>(timegm(&tm));
    return (t - offset_s) * 1000 + millis;
}

}  // namespace beacon::base
