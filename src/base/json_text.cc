#include "base/json_text.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace beacon::base {

namespace {

// Whether one of the 8 bytes of `w` is below 0x20, '"' or '\\' (the classic "has a byte less
// than n" and "has a zero byte" word tricks; exact as a yes/no answer).
bool NeedsEscape8(uint64_t w) {
    constexpr uint64_t kOnes = 0x0101010101010101ULL;
    constexpr uint64_t kHigh = 0x8080808080808080ULL;
    const uint64_t quote = w ^ (kOnes * '"');
    const uint64_t backslash = w ^ (kOnes * '\\');
    const uint64_t control = (w - kOnes * 0x20) & ~w;
    const uint64_t has = control | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
    return (has & kHigh) != 0;
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.reserve(out.size() + s.size() + 2);
    out.push_back('"');
    size_t run = 0;  // start of the current run of bytes that need no escaping
    for (size_t i = 0; i < s.size(); ++i) {
        // Eight clean bytes at a time: prompts are long and rarely need escaping.
        while (i + 8 <= s.size()) {
            uint64_t w;
            std::memcpy(&w, s.data() + i, 8);
            if (NeedsEscape8(w)) break;
            i += 8;
        }
        if (i >= s.size()) break;
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out.append(s.data() + run, i - run);
        run = i + 1;
        switch (c) {
            case '"':
                out.append("\\\"");
                break;
            case '\\':
                out.append("\\\\");
                break;
            case '\n':
                out.append("\\n");
                break;
            case '\r':
                out.append("\\r");
                break;
            case '\t':
                out.append("\\t");
                break;
            case '\b':
                out.append("\\b");
                break;
            case '\f':
                out.append("\\f");
                break;
            default:
                out.append("\\u00");
                out.push_back(kHex[c >> 4]);
                out.push_back(kHex[c & 0xf]);
        }
    }
    out.append(s.data() + run, s.size() - run);
    out.push_back('"');
}

void AppendJsonNumber(std::string& out, double v) {
    if (!std::isfinite(v)) v = 0;
    fmt::format_to(std::back_inserter(out), "{}", v);
}

void AppendJsonInt(std::string& out, int64_t v) {
    // std::to_chars: same digits as fmt's "{}", without its type-erased formatting path.
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
}

}  // namespace beacon::base
