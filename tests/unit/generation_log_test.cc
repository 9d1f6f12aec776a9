#include "gateway/generation_log.h"

#include <gtest/gtest.h>

#include <string>

namespace beacon::gateway {
namespace {

trace::TraceRecord Record(const std::string& id) {
    trace::TraceRecord r;
    r.generation_id = id;
    r.model = "openai/gpt-4o";
    r.provider = "OpenAI";
    r.start_ns = 1'700'000'000'000'000'000;
    r.end_ns = r.start_ns + 250'000'000;
    r.finish_reason = "stop";
    return r;
}

TEST(GenerationLogTest, AReusedSlotKeepsNothingOfItsPreviousRequest) {
    // Verifies that once the ring is full, the oldest entry goes and a record written over its
    // slot keeps none of the previous request's fields (error, attempts, time to first token,
    // user, cancellation).
    GenerationLog log(2);
    auto first = Record("gen-1");
    first.user = "alice";
    first.error = "upstream answered HTTP 500";
    first.status = 502;
    first.first_token_ns = first.start_ns + 40'000'000;
    first.attempts = {{"a/b", "A", 500, "boom", 100}, {"c/d", "C", 200, "", 150}};
    first.outcome = trace::Outcome::kCancelled;
    first.finish_reason.clear();
    log.Add(first);
    log.Add(Record("gen-2"));
    log.Add(Record("gen-3"));  // over gen-1's slot

    EXPECT_FALSE(log.Find("gen-1"));
    auto third = log.Find("gen-3");
    ASSERT_TRUE(third);
    EXPECT_EQ(third->id, "gen-3");
    EXPECT_EQ(third->user, "");
    EXPECT_EQ(third->error, "");
    EXPECT_EQ(third->status, 200);
    EXPECT_FALSE(third->time_to_first_token_ms);
    EXPECT_TRUE(third->attempts.empty());
    EXPECT_FALSE(third->cancelled);
    EXPECT_EQ(third->finish_reason, "stop");
    EXPECT_DOUBLE_EQ(third->latency_ms, 250);
    ASSERT_TRUE(log.Find("gen-2"));
}

TEST(GenerationLogTest, KeepsTheSummaryOfARecord) {
    // Verifies the fields derived from a record: a cancelled request without a finish reason
    // says "cancelled", time to first token and generation time (after the failed attempts).
    GenerationLog log(4);
    auto r = Record("gen-9");
    r.outcome = trace::Outcome::kCancelled;
    r.finish_reason.clear();
    r.first_token_ns = r.start_ns + 40'000'000;
    r.attempts = {{"a/b", "A", 500, "boom", 100}, {"c/d", "C", 200, "", 150}};
    log.Add(r);
    auto info = log.Find("gen-9");
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->cancelled);
    EXPECT_EQ(info->finish_reason, "cancelled");
    ASSERT_TRUE(info->time_to_first_token_ms);
    EXPECT_DOUBLE_EQ(*info->time_to_first_token_ms, 40);
    EXPECT_DOUBLE_EQ(info->generation_time_ms, 150);
    ASSERT_EQ(info->attempts.size(), 2u);
    EXPECT_EQ(info->attempts[0].error, "boom");
}

}  // namespace
}  // namespace beacon::gateway
