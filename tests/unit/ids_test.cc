#include "base/ids.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <string>

namespace beacon::base {
namespace {

TEST(IdsTest, GenerationIdFormat) {
    // Verifies "gen-<unix seconds>-<20 alphanumerics>", with the given seconds.
    const std::regex format("^gen-\\d+-[A-Za-z0-9]{20}$");
    for (int64_t seconds : {int64_t{0}, int64_t{1732752000}, int64_t{4102444800}}) {
        const std::string id = NewGenerationId(seconds);
        EXPECT_TRUE(std::regex_match(id, format)) << id;
        EXPECT_EQ(id.rfind("gen-" + std::to_string(seconds) + "-", 0), 0u) << id;
        EXPECT_EQ(id.size(), 4 + std::to_string(seconds).size() + 1 + 20);
    }
}

TEST(IdsTest, GenerationIdsAreUnique) {
    // Verifies that 10k ids made in the same second are all different.
    std::set<std::string> seen;
    for (int i = 0; i < 10000; ++i) seen.insert(NewGenerationId(1732752000));
    EXPECT_EQ(seen.size(), 10000u);
}

TEST(IdsTest, RandomAlnumUsesTheWholeAlphabet) {
    // Verifies length, alphabet, and that upper case, lower case and digits all occur.
    EXPECT_EQ(RandomAlnum(0), "");
    const std::string s = RandomAlnum(2000);
    ASSERT_EQ(s.size(), 2000u);
    bool upper = false, lower = false, digit = false;
    for (char c : s) {
        ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << c;
        upper |= std::isupper(static_cast<unsigned char>(c)) != 0;
        lower |= std::islower(static_cast<unsigned char>(c)) != 0;
        digit |= std::isdigit(static_cast<unsigned char>(c)) != 0;
    }
    EXPECT_TRUE(upper && lower && digit);
}

TEST(IdsTest, RandomAlnumIsUniform) {
    // Verifies every character is equally likely: 124k picks, 2000 expected per character (a
    // standard deviation of ~44); a pick folded onto the alphabet (64 -> 62) would give two
    // characters twice as many.
    const std::string s = RandomAlnum(62 * 2000);
    std::map<char, int> count;
    for (char c : s) ++count[c];
    ASSERT_EQ(count.size(), 62u);
    for (const auto& [c, n] : count) {
        EXPECT_GT(n, 1700) << c;
        EXPECT_LT(n, 2300) << c;
    }
}

TEST(IdsTest, HexEncode) {
    // Verifies lower-case hex encoding of raw bytes, including NUL and high bytes.
    EXPECT_EQ(HexEncode(""), "");
    EXPECT_EQ(HexEncode(std::string("\x00\xff\x10\x7f", 4)), "00ff107f");
    EXPECT_EQ(HexEncode("ab"), "6162");
    EXPECT_EQ(HexEncode("\xAB\xCD\xEF"), "abcdef");
}

TEST(IdsTest, IsLowerHex) {
    // Verifies the exact length and the lower-case hex alphabet.
    EXPECT_TRUE(IsLowerHex("0123456789abcdef", 16));
    EXPECT_TRUE(IsLowerHex("", 0));
    EXPECT_FALSE(IsLowerHex("0123456789abcdef", 15));
    EXPECT_FALSE(IsLowerHex("0123456789abcdef", 17));
    EXPECT_FALSE(IsLowerHex("0123456789ABCDEF", 16));
    EXPECT_FALSE(IsLowerHex("abcg", 4));
    EXPECT_FALSE(IsLowerHex("ab c", 4));
    EXPECT_FALSE(IsLowerHex(std::string("ab\0c", 4), 4));
}

TEST(IdsTest, RandomHex) {
    // Verifies that RandomHex(n) gives 2n lower-case hex characters that differ between calls.
    EXPECT_EQ(RandomHex(0), "");
    for (size_t n : {1u, 8u, 16u, 24u, 32u}) {
        const std::string h = RandomHex(n);
        EXPECT_TRUE(IsLowerHex(h, 2 * n)) << h;
    }
    EXPECT_NE(RandomHex(16), RandomHex(16));
}

}  // namespace
}  // namespace beacon::base

#include "base/iso_time.h"

namespace beacon::base {
namespace {

// Verifies both ISO 8601 forms end in Z and keep milliseconds only in the millisecond form.
TEST(IsoTime, Formats) {
    EXPECT_EQ(IsoSeconds(1700000000), "2023-11-14T22:13:20Z");
    EXPECT_EQ(IsoMillis(1700000000500000000), "2023-11-14T22:13:20.500Z");
    EXPECT_EQ(IsoMillis(1700000000007999999), "2023-11-14T22:13:20.007Z");
}

}  // namespace
}  // namespace beacon::base
