#include <gtest/gtest.h>

#include <string>

#include "http/exchange.h"

namespace beacon::http {
namespace {

TEST(QueryParamTest, FindsValues) {
    // Verifies lookup of the first, middle and last parameters.
    EXPECT_EQ(QueryParam("a=1&id=gen-1-abc&b=2", "id"), "gen-1-abc");
    EXPECT_EQ(QueryParam("a=1&b=2", "a"), "1");
    EXPECT_EQ(QueryParam("a=1&b=2", "b"), "2");
}

TEST(QueryParamTest, AbsentOrEmpty) {
    // Verifies that absent names, names without a value and empty queries give "".
    EXPECT_EQ(QueryParam("", "id"), "");
    EXPECT_EQ(QueryParam("a=1", "id"), "");
    EXPECT_EQ(QueryParam("id", "id"), "");
    EXPECT_EQ(QueryParam("id=", "id"), "");
    EXPECT_EQ(QueryParam("&&id=&", "id"), "");
}

TEST(QueryParamTest, MatchesWholeNamesOnly) {
    // Verifies that a name is not matched as a prefix or suffix of another.
    EXPECT_EQ(QueryParam("ids=1&xid=2", "id"), "");
    EXPECT_EQ(QueryParam("ids=1&id=3", "id"), "3");
}

TEST(QueryParamTest, FirstOccurrenceWins) {
    // Verifies that a repeated name gives its first value.
    EXPECT_EQ(QueryParam("id=1&id=2", "id"), "1");
}

TEST(QueryParamTest, DecodesValues) {
    // Verifies percent-decoding, '+' as space, and '=' inside a value.
    EXPECT_EQ(QueryParam("q=a%20b+c", "q"), "a b c");
    EXPECT_EQ(QueryParam("q=%41%62%7a%7A", "q"), "Abzz");
    EXPECT_EQ(QueryParam("q=a%2Bb%26c%3Dd", "q"), "a+b&c=d");
    EXPECT_EQ(QueryParam("q=x=y", "q"), "x=y");
    EXPECT_EQ(QueryParam("q=%00", "q"), std::string(1, '\0'));
    EXPECT_EQ(QueryParam("q=%e2%9c%93", "q"), "\xe2\x9c\x93");
}

TEST(QueryParamTest, KeepsMalformedEscapes) {
    // Verifies that malformed or truncated escapes are kept as is.
    EXPECT_EQ(QueryParam("q=%", "q"), "%");
    EXPECT_EQ(QueryParam("q=%4", "q"), "%4");
    EXPECT_EQ(QueryParam("q=100%", "q"), "100%");
    EXPECT_EQ(QueryParam("q=%zz", "q"), "%zz");
    EXPECT_EQ(QueryParam("q=%4g1", "q"), "%4g1");
    EXPECT_EQ(QueryParam("q=a%41", "q"), "aA");
}

TEST(QueryParamTest, NamesAreNotDecoded) {
    // Verifies that names are compared as sent (not decoded).
    EXPECT_EQ(QueryParam("i%64=1", "id"), "");
    EXPECT_EQ(QueryParam("i%64=1", "i%64"), "1");
}

}  // namespace
}  // namespace beacon::http
