#include "base/json_text.h"

#include <algorithm>
#include <array>
#include <bit>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cmath>
#include <cstddef>
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
[[maybe_unused]] uint64_t EscapeMask8(uint64_t w) {
    constexpr uint64_t kOnes = 0x0101010101010101ULL;
    constexpr uint64_t kHigh = 0x8080808080808080ULL;
    const uint64_t quote = w ^ (kOnes * '"');
    const uint64_t backslash = w ^ (kOnes * '\\');
    const uint64_t control = (w - kOnes * 0x20) & ~w;
    const uint64_t has = control | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
    return has & kHigh;
}

bool NeedsEscape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

// The escape mask of the block at `p` (kBlock bytes): bit/byte k set when p[k] needs escaping,
// read with countr_zero(mask) / kMaskBitsPerByte.
#ifdef __SSE2__
constexpr size_t kBlock = 16;
constexpr int kMaskBitsPerByte = 1;
uint64_t BlockMask(const char* p) {
    // A byte needs escaping when it equals '"' or '\\', or when max(byte, 0x1f) is 0x1f (below
    // 0x20, unsigned). SSE2 is part of x86-64.
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i control = _mm_set1_epi8(0x1f);
    const __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
        _mm_cmpeq_epi8(_mm_max_epu8(v, control), control));
    return static_cast<unsigned>(_mm_movemask_epi8(hit));
}
#else
constexpr size_t kBlock = 8;
constexpr int kMaskBitsPerByte = 8;
uint64_t BlockMask(const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return EscapeMask8(w);
}
#endif

// The second byte of the two-byte escape of each byte that has one, else 0.
constexpr auto kShortEscape = [] {
    std::array<char, 256> t{};
    t['"'] = '"';
    t['\\'] = '\\';
    t['\n'] = 'n';
    t['\r'] = 'r';
    t['\t'] = 't';
    t['\b'] = 'b';
    t['\f'] = 'f';
    return t;
}();

// Writes the escape sequence of `c` at `d` (room for 6 bytes); returns the end.
inline char* WriteEscaped(char* d, unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    d[0] = '\\';
    if (const char e = kShortEscape[c]) {
        d[1] = e;
        return d + 2;
    }
    std::memcpy(d + 1, "u00", 3);
    d[4] = kHex[c >> 4];
    d[5] = kHex[c & 0xf];
    return d + 6;
}

}  // namespace

void AppendJsonEscaped(std::string& out, std::string_view s) {
    static_assert(std::endian::native == std::endian::little);
    // Written through a pointer into room made up front (the text plus a quarter, grown when an
    // escape does not fit): a whole block is stored before looking at it, so clean text costs a
    // load, a store and a compare per block, and an escape costs one short step. The appends
    // this replaces (one per clean run, one per escape) were a third of the export thread.
    if (s.size() < kBlock && std::none_of(s.begin(), s.end(), [](char c) {
            return NeedsEscape(static_cast<unsigned char>(c));
        })) {
        out.append(s);  // a key, an id: most short strings are clean
        return;
    }
    constexpr size_t kSlack = kBlock + 6;  // a block, or one escape, always fits
    const size_t start = out.size();
    out.resize(start + s.size() + s.size() / 4 + kSlack);
    char* d = out.data() + start;
    char* limit = out.data() + out.size() - kSlack;
    const char* p = s.data();
    const char* const end = p + s.size();
    auto grow = [&] {  // room for the rest at two bytes each (escapes are rarely \u00XX)
        const size_t used = static_cast<size_t>(d - out.data());
        out.resize(used + 2 * static_cast<size_t>(end - p) + 2 * kSlack);
        d = out.data() + used;
        limit = out.data() + out.size() - kSlack;
    };
    while (end - p >= static_cast<std::ptrdiff_t>(kBlock)) {
        if (d > limit) grow();
        std::memcpy(d, p, kBlock);
        const uint64_t mask = BlockMask(p);
        if (mask == 0) {
            p += kBlock;
            d += kBlock;
            continue;
        }
        const auto clean = static_cast<size_t>(std::countr_zero(mask) / kMaskBitsPerByte);
        d = WriteEscaped(d + clean, static_cast<unsigned char>(p[clean]));
        p += clean + 1;
    }
    for (; p < end; ++p) {
        if (d > limit) grow();
        const auto c = static_cast<unsigned char>(*p);
        if (NeedsEscape(c)) {
            d = WriteEscaped(d, c);
        } else {
            *d++ = static_cast<char>(c);
        }
    }
    out.resize(static_cast<size_t>(d - out.data()));
}

void AppendJsonString(std::string& out, std::string_view s) {
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

namespace {

// Integers in decimal (std::to_chars: the digits of fmt's "{}", without its type-erased path).
template <class Int>
void AppendDecimal(std::string& out, Int v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
}

}  // namespace

void AppendJsonInt(std::string& out, int64_t v) { AppendDecimal(out, v); }

// A chat completion or a chunk fits without growing the string.
constexpr size_t kTextRoom = 1024;

void AppendJsonValue(std::string& out, const boost::json::value& v) {
    switch (v.kind()) {
        case boost::json::kind::null:
            out += "null";
            return;
        case boost::json::kind::bool_:
            out += v.get_bool() ? "true" : "false";
            return;
        case boost::json::kind::int64:
            AppendJsonInt(out, v.get_int64());
            return;
        case boost::json::kind::uint64:
            AppendDecimal(out, v.get_uint64());
            return;
        case boost::json::kind::double_:
            if (std::isfinite(v.get_double())) {
                AppendJsonNumber(out, v.get_double());
            } else {
                out += "null";
            }
            return;
        case boost::json::kind::string: {
            const auto& s = v.get_string();
            AppendJsonString(out, std::string_view(s.data(), s.size()));
            return;
        }
        case boost::json::kind::array:
            AppendJsonValue(out, v.get_array());
            return;
        case boost::json::kind::object:
            AppendJsonValue(out, v.get_object());
            return;
    }
}

void AppendJsonValue(std::string& out, const boost::json::array& v) {
    out.push_back('[');
    bool first = true;
    for (const auto& e : v) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonValue(out, e);
    }
    out.push_back(']');
}

void AppendJsonValue(std::string& out, const boost::json::object& v) {
    out.push_back('{');
    bool first = true;
    for (const auto& m : v) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonString(out, std::string_view(m.key().data(), m.key().size()));
        out.push_back(':');
        AppendJsonValue(out, m.value());
    }
    out.push_back('}');
}

namespace {

template <class Dom>
std::string TextOf(const Dom& v) {
    std::string out;
    out.reserve(kTextRoom);
    AppendJsonValue(out, v);
    return out;
}

}  // namespace

std::string JsonText(const boost::json::value& v) { return TextOf(v); }

std::string JsonText(const boost::json::object& v) { return TextOf(v); }

}  // namespace beacon::base
