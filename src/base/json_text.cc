#include "base/json_text.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace beacon::base {

namespace {

// The bytes of `w` that are below 0x20, '"' or '\\', as their high bits (the classic "has a
// byte less than n" and "has a zero byte" word tricks). Borrows can flag bytes after a true
// hit, never before one, so the lowest flag is exact: with little-endian loads, the first such
// byte in memory.
uint64_t EscapeMask8(uint64_t w) {
    constexpr uint64_t kOnes = 0x0101010101010101ULL;
    constexpr uint64_t kHigh = 0x8080808080808080ULL;
    const uint64_t quote = w ^ (kOnes * '"');
    const uint64_t backslash = w ^ (kOnes * '\\');
    const uint64_t control = (w - kOnes * 0x20) & ~w;
    const uint64_t has = control | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
    return has & kHigh;
}

bool NeedsEscape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

// The index of the first byte of `s` at or after `i` that needs escaping, or s.size().
size_t NextEscape(std::string_view s, size_t i) {
    static_assert(std::endian::native == std::endian::little);
#ifdef __SSE2__
    // Sixteen bytes at a time (SSE2 is part of x86-64): a byte needs escaping when it equals '"'
    // or '\\', or when max(byte, 0x1f) is 0x1f (below 0x20, unsigned).
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i control = _mm_set1_epi8(0x1f);
    for (; i + 16 <= s.size(); i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
        const __m128i hit =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                         _mm_cmpeq_epi8(_mm_max_epu8(v, control), control));
        if (const int mask = _mm_movemask_epi8(hit)) {
            return i + static_cast<size_t>(std::countr_zero(static_cast<unsigned>(mask)));
        }
    }
#endif
    // Eight clean bytes at a time: prompts are long and rarely need escaping.
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        if (const uint64_t mask = EscapeMask8(w)) return i + std::countr_zero(mask) / 8;
    }
    while (i < s.size() && !NeedsEscape(static_cast<unsigned char>(s[i]))) ++i;
    return i;
}

void AppendEscaped(std::string& out, unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    char e[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = kHex[c >> 4];
            e[5] = kHex[c & 0xf];
            n = 6;
    }
    out.append(e, n);
}

}  // namespace

void AppendJsonEscaped(std::string& out, std::string_view s) {
    size_t run = 0;  // start of the bytes not written yet (they need no escaping)
    for (size_t i = NextEscape(s, 0); i < s.size(); i = NextEscape(s, i)) {
        out.append(s.data() + run, i - run);
        AppendEscaped(out, static_cast<unsigned char>(s[i]));
        run = ++i;
    }
    out.append(s.data() + run, s.size() - run);
}

void AppendJsonString(std::string& out, std::string_view s) {
    out.reserve(out.size() + s.size() + 2);
    out.push_back('"');
    AppendJsonEscaped(out, s);
    out.push_back('"');
}

void AppendJsonNumber(std::string& out, double v) {
    if (!std::isfinite(v)) v = 0;
    // The shortest text that reads back as `v` (like fmt's "{}", which chose the exponent form
    // from 1e16 on), without fmt's type-erased path: half the cost of a cost-details object.
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
}

void AppendJsonInt(std::string& out, int64_t v) {
    // std::to_chars: same digits as fmt's "{}", without its type-erased formatting path.
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
}

}  // namespace beacon::base
