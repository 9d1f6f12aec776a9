#include "base/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace beacon::base {
namespace {

// The escaping rules written out one byte at a time: what the word-at-a-time scan must match.
std::string Reference(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 0xf];
                } else {
                    out += ch;
                }
        }
    }
    return out + "\"";
}

TEST(JsonTextTest, EscapesLikeTheReferenceAtEveryPosition) {
    // Verifies the 8-bytes-at-a-time scan on 20k random strings (lengths 0..70) whose bytes are
    // drawn mostly from the ones that matter: every control byte, '"', '\\', the bytes right
    // around them, DEL and bytes >= 0x80 (UTF-8), so each lands at every offset in a word.
    const std::string special = std::string("\"\\\x1f\x20\x21\x5b\x5d\x7f\x80\xff\xe2\x82\xac", 13);
    std::mt19937 rng(12345);
    for (int n = 0; n < 20000; ++n) {
        std::string s(rng() % 71, 'a');
        for (auto& c : s) {
            const unsigned pick = rng() % 4;
            if (pick == 0) c = static_cast<char>(rng() % 0x20);
            if (pick == 1) c = special[rng() % special.size()];
            if (pick == 2) c = static_cast<char>(rng() % 256);
        }
        std::string got;
        AppendJsonString(got, s);
        ASSERT_EQ(got, Reference(s)) << "case " << n;
    }
}

TEST(JsonTextTest, SparseEscapesLikeTheReferenceInEveryLane) {
    // Verifies the 16- and 8-byte scans where they matter: long clean runs (UTF-8 included) with
    // a rare byte to escape, so that the first hit falls in every lane of a block, and the
    // version without quotes.
    const std::string special = std::string("\"\\\x00\x01\x1f\n\t", 7);
    const std::string clean = std::string("abc \x20\x21\x7f\x80\xff\xe2\x82\xac", 12);
    std::mt19937 rng(777);
    for (int n = 0; n < 20000; ++n) {
        std::string s(rng() % 200, 'a');
        for (auto& c : s) {
            c = rng() % 40 == 0 ? special[rng() % special.size()] : clean[rng() % clean.size()];
        }
        std::string got;
        AppendJsonString(got, s);
        ASSERT_EQ(got, Reference(s)) << "case " << n;
        std::string bare = "prefix:";
        AppendJsonEscaped(bare, s);
        ASSERT_EQ(bare, "prefix:" + got.substr(1, got.size() - 2)) << "case " << n;
    }
}

TEST(JsonTextTest, DenseEscapesGrowTheRoomAfterExistingText) {
    // Verifies the escaper's room: text where every byte (or every other byte) needs escaping,
    // long enough to outgrow what is made up front several times, appended after existing text,
    // as JSON text inside an attribute value is.
    for (size_t len : {size_t{15}, size_t{16}, size_t{17}, size_t{100}, size_t{4096}}) {
        for (const std::string& unit : {std::string("\x01", 1), std::string("\""),
                                        std::string("a\\"), std::string("\x1f\n", 2)}) {
            std::string s;
            while (s.size() < len) s += unit;
            std::string got = std::string(1000, 'p');
            AppendJsonString(got, s);
            ASSERT_EQ(got, std::string(1000, 'p') + Reference(s)) << len << " " << unit.size();
        }
    }
}

TEST(JsonTextTest, LongCleanRunsAndTailsRoundTrip) {
    // Verifies that a long prompt with a few escapes anywhere parses back to itself.
    for (size_t len : {size_t{7}, size_t{8}, size_t{9}, size_t{63}, size_t{64}, size_t{1000}}) {
        for (size_t at = 0; at < len; at += 5) {
            std::string s(len, 'x');
            s[at] = '"';
            s[len - 1 - at % len] = '\n';
            std::string json;
            AppendJsonString(json, s);
            EXPECT_EQ(boost::json::parse(json).as_string(), s) << len << " " << at;
        }
    }
}

TEST(JsonTextTest, NumbersReadBackExactly) {
    // Verifies that every finite double is written as a JSON number that reads back to the same
    // value (random bit patterns cover tiny, huge and subnormal values), and that NaN and
    // infinities, which JSON cannot hold, become 0. Read back with std::from_chars, which rounds
    // exactly (Boost.JSON 1.81's parser may be one unit off in the last place).
    std::mt19937_64 rng(99);
    std::vector<double> values{0.0,    -0.0,   1.0,
                               2.0,    0.1,    1e-5,
                               2.5e-6, 1e16,   123456789012345680.0,
                               -3.75,  5e-324, 1.7976931348623157e308};
    for (int i = 0; i < 20000; ++i) {
        const uint64_t bits = rng();
        double d;
        std::memcpy(&d, &bits, sizeof d);
        if (std::isfinite(d)) values.push_back(d);
    }
    for (double v : values) {
        std::string text;
        AppendJsonNumber(text, v);
        boost::system::error_code ec;
        const auto parsed = boost::json::parse(text, ec);
        ASSERT_FALSE(ec) << text;
        ASSERT_TRUE(parsed.is_number()) << text;
        double back = 0;
        const auto r = std::from_chars(text.data(), text.data() + text.size(), back);
        ASSERT_EQ(r.ptr, text.data() + text.size()) << text;
        ASSERT_EQ(back, v) << text;
    }
    for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
        std::string text;
        AppendJsonNumber(text, bad);
        EXPECT_EQ(text, "0");
    }
}

// A random DOM of every kind but double, with strings full of bytes that need escaping.
boost::json::value RandomValue(std::mt19937_64& rng, int depth) {
    const std::string special = std::string("\"\\\x01\x1f\n\t/\x7f\xe2\x82\xac", 12);
    auto text = [&] {
        std::string s(rng() % 12, 'a');
        for (auto& c : s) {
            if (rng() % 3 == 0) c = special[rng() % special.size()];
        }
        return s;
    };
    switch (depth > 3 ? rng() % 5 : rng() % 7) {
        case 0:
            return nullptr;
        case 1:
            return rng() % 2 == 0;
        case 2:
            return static_cast<int64_t>(rng());
        case 3:
            return static_cast<uint64_t>(rng() | (uint64_t{1} << 63));
        case 4:
            return boost::json::string(text());
        case 5: {
            boost::json::array a;
            for (int i = static_cast<int>(rng() % 5); i > 0; --i) {
                a.push_back(RandomValue(rng, depth + 1));
            }
            return a;
        }
        default: {
            boost::json::object o;
            for (int i = static_cast<int>(rng() % 5); i > 0; --i) {
                o[text()] = RandomValue(rng, depth + 1);
            }
            return o;
        }
    }
}

TEST(JsonTextTest, DomTextIsWhatBoostSerializeWrites) {
    // Verifies AppendJsonValue against boost::json::serialize on 5000 random documents without
    // doubles (nested arrays and objects, escapes, negative and 64-bit unsigned integers): the
    // same text, byte for byte.
    std::mt19937_64 rng(2024);
    for (int n = 0; n < 5000; ++n) {
        const boost::json::value v = RandomValue(rng, 0);
        ASSERT_EQ(JsonText(v), boost::json::serialize(v)) << "case " << n;
        if (v.is_object()) {
            ASSERT_EQ(JsonText(v.get_object()), boost::json::serialize(v)) << "case " << n;
        }
    }
}

TEST(JsonTextTest, DomDoublesReadBackAndNonFiniteIsNull) {
    // Verifies doubles inside a DOM are written as numbers that read back to the same value
    // (0.2 as 0.2, where serialize wrote 2E-1), and that NaN and infinities, which serialize
    // wrote as the non-JSON words NaN and Infinity, become null, including the infinity that
    // parsing 1e999 gives.
    boost::json::array a{0.2, -0.0, 1e300, 2.0, 5e-324};
    const std::string text = JsonText(a);
    EXPECT_EQ(text, "[0.2,-0,1e+300,2,5e-324]");
    const auto back = boost::json::parse(text).as_array();
    ASSERT_EQ(back.size(), a.size());
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(back[i].to_number<double>(), a[i].get_double()) << i;
    }
    boost::json::object bad{{"nan", std::nan("")}, {"inf", HUGE_VAL}, {"minus", -HUGE_VAL}};
    EXPECT_EQ(JsonText(bad), R"({"nan":null,"inf":null,"minus":null})");
    EXPECT_EQ(JsonText(boost::json::parse(R"({"logprob":-1e999})")), R"({"logprob":null})");
}

}  // namespace
}  // namespace beacon::base
