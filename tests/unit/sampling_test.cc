#include "broadcast/sampling.h"

#include <gtest/gtest.h>

namespace beacon::broadcast {
namespace {

trace::TraceRecord Record(std::string gen, std::string session, std::string key = "app") {
    trace::TraceRecord r;
    r.generation_id = std::move(gen);
    r.session_id = std::move(session);
    r.api_key_name = std::move(key);
    r.api_key_id = "key_" + r.api_key_name;
    return r;
}

// Verifies the sampling point depends on the session, not the generation, when there is one.
TEST(Sampling, SessionDecidesWhole) {
    auto a = Record("gen-1", "s1");
    auto b = Record("gen-2", "s1");
    EXPECT_EQ(SamplingPoint("d", a), SamplingPoint("d", b));
    auto c = Record("gen-1", "");
    auto d = Record("gen-2", "");
    EXPECT_NE(SamplingPoint("d", c), SamplingPoint("d", d));
    EXPECT_NE(SamplingPoint("d1", a), SamplingPoint("d2", a));
}

// Verifies about rate x sessions are kept, and the result is stable across calls.
TEST(Sampling, RateIsRespected) {
    config::DestinationConfig dest;
    dest.id = "dest";
    dest.sampling_rate = 0.5;
    int kept = 0;
    for (int i = 0; i < 10000; ++i) {
        auto r = Record("gen-" + std::to_string(i), "session-" + std::to_string(i));
        const bool first = Accepts(dest, r);
        EXPECT_EQ(first, Accepts(dest, r));
        kept += first;
    }
    EXPECT_GT(kept, 4700);
    EXPECT_LT(kept, 5300);
    dest.sampling_rate = 1.0;
    EXPECT_TRUE(Accepts(dest, Record("g", "s")));
}

// Verifies the key filter and the enabled switch.
TEST(Sampling, KeyFilterAndEnabled) {
    config::DestinationConfig dest;
    dest.id = "dest";
    dest.api_key_names = {"app"};
    EXPECT_TRUE(Accepts(dest, Record("g", "s", "app")));
    EXPECT_FALSE(Accepts(dest, Record("g", "s", "other")));
    dest.api_key_names = {"key_other"};  // by id works too
    EXPECT_TRUE(Accepts(dest, Record("g", "s", "other")));
    dest.api_key_names.clear();
    dest.enabled = false;
    EXPECT_FALSE(Accepts(dest, Record("g", "s", "app")));
}

}  // namespace
}  // namespace beacon::broadcast
