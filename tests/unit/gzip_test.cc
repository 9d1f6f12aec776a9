#include "base/gzip.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace beacon::base {
namespace {

// Gzip is ISA-L's; Gunzip is zlib's, an independent decoder, so a round trip checks the format.
std::string RoundTrip(const std::string& data, int level) {
    const std::string packed = Gzip(data, level);
    EXPECT_GE(packed.size(), 18u);  // the gzip header and trailer at least
    EXPECT_EQ(static_cast<unsigned char>(packed[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(packed[1]), 0x8b);
    bool ok = false;
    std::string unpacked = Gunzip(packed, &ok);
    EXPECT_TRUE(ok);
    return unpacked;
}

std::string RandomBytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

TEST(GzipTest, EmptyInput) {
    // Verifies that an empty body is a valid gzip member that decodes to nothing.
    EXPECT_EQ(RoundTrip("", 1), "");
}

TEST(GzipTest, JsonCompressesAtEveryLevel) {
    // Verifies that repetitive JSON round-trips at levels 1..9 and shrinks at least 10x.
    std::string json = "[";
    for (int i = 0; i < 2000; ++i) {
        json += R"({"key":"langfuse.observation.type","value":{"stringValue":"generation"}},)";
    }
    json += "{}]";
    for (int level = 1; level <= 9; ++level) {
        EXPECT_EQ(RoundTrip(json, level), json) << "level " << level;
        EXPECT_LT(Gzip(json, level).size() * 10, json.size()) << "level " << level;
    }
}

TEST(GzipTest, IncompressibleInputGrowsTheBuffer) {
    // Verifies that random bytes (which deflate cannot shrink) of several sizes, up to 3 MiB,
    // come back intact: the output buffer must grow past the input size when needed.
    for (size_t n : {size_t{1}, size_t{100}, size_t{65536}, size_t{3} << 20}) {
        const std::string data = RandomBytes(n, static_cast<uint32_t>(n));
        EXPECT_EQ(RoundTrip(data, 1), data) << n << " bytes";
    }
}

TEST(GzipTest, DamagedMemberIsRefused) {
    // Verifies that Gunzip reports a truncated member instead of returning part of it as whole.
    std::string packed = Gzip(std::string(10000, 'a'), 1);
    packed.resize(packed.size() - 4);
    bool ok = true;
    Gunzip(packed, &ok);
    EXPECT_FALSE(ok);
}

}  // namespace
}  // namespace beacon::base
