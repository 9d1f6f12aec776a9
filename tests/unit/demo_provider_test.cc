#include "providers/demo/demo_provider.h"

#include <gtest/gtest.h>

#include <string>

namespace beacon::providers::demo {
namespace {

api::ChatRequest Parse(std::string_view body) {
    auto r = api::ParseChatRequest(body);
    EXPECT_TRUE(r) << r.error().message;
    return r ? std::move(r.value()) : api::ChatRequest{};
}

std::string Join(const DemoAnswer& a) {
    std::string out;
    for (const auto& p : a.pieces) out += p;
    return out;
}

constexpr std::string_view kHello = R"({"messages":[{"role":"user","content":"Hello there"}]})";

TEST(DemoAnswerTest, IsDeterministic) {
    // Verifies that the same request always gets the same pieces, finish reason and counts.
    const DemoAnswer a = Answer(Parse(kHello));
    const DemoAnswer b = Answer(Parse(kHello));
    EXPECT_EQ(a.pieces, b.pieces);
    EXPECT_EQ(a.finish_reason, b.finish_reason);
    EXPECT_EQ(a.prompt_tokens, b.prompt_tokens);
}

TEST(DemoAnswerTest, EchoesTheLastUserMessage) {
    // Verifies the answer text, split into words (each piece but the first starts with a space).
    const DemoAnswer a = Answer(Parse(
        R"({"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},)"
        R"({"role":"user","content":"Hello there"}]})"));
    EXPECT_EQ(Join(a),
              "Hello! This is Beacon's offline demo model. You said: \"Hello there\". Configure a "
              "provider in beacon.toml to reach a real model.");
    EXPECT_EQ(a.finish_reason, "stop");
    ASSERT_GT(a.pieces.size(), 3u);
    EXPECT_EQ(a.pieces[0], "Hello!");
    EXPECT_EQ(a.pieces[1], " This");
    for (size_t i = 1; i < a.pieces.size(); ++i) {
        EXPECT_EQ(a.pieces[i][0], ' ') << i;
        EXPECT_EQ(a.pieces[i].find(' ', 1), std::string::npos) << a.pieces[i];
    }
}

TEST(DemoAnswerTest, MaxTokensCutsWithLength) {
    // Verifies that max_tokens limits the pieces and sets finish_reason "length".
    const DemoAnswer full = Answer(Parse(kHello));
    const DemoAnswer cut =
        Answer(Parse(R"({"max_tokens":3,"messages":[{"role":"user","content":"Hello there"}]})"));
    ASSERT_EQ(cut.pieces.size(), 3u);
    EXPECT_EQ(cut.finish_reason, "length");
    EXPECT_EQ(cut.pieces[0], full.pieces[0]);
    EXPECT_EQ(cut.pieces[2], full.pieces[2]);
    EXPECT_EQ(cut.prompt_tokens, full.prompt_tokens);
}

TEST(DemoAnswerTest, MaxCompletionTokensWins) {
    // Verifies that max_completion_tokens takes precedence over max_tokens.
    const DemoAnswer a = Answer(Parse(R"({"max_tokens":3,"max_completion_tokens":5,)"
                                      R"("messages":[{"role":"user","content":"x"}]})"));
    EXPECT_EQ(a.pieces.size(), 5u);
    EXPECT_EQ(a.finish_reason, "length");
}

TEST(DemoAnswerTest, LargeLimitsDoNotCut) {
    // Verifies that a limit at or above the answer's length keeps finish_reason "stop", also for
    // a valid limit beyond int64 (which must not throw).
    const size_t n = Answer(Parse(kHello)).pieces.size();
    const DemoAnswer exact =
        Answer(Parse(R"({"max_tokens":)" + std::to_string(n) +
                     R"(,"messages":[{"role":"user","content":"Hello there"}]})"));
    EXPECT_EQ(exact.pieces.size(), n);
    EXPECT_EQ(exact.finish_reason, "stop");
    const DemoAnswer huge = Answer(
        Parse(R"({"max_tokens":1e30,"messages":[{"role":"user","content":"Hello there"}]})"));
    EXPECT_EQ(huge.pieces.size(), n);
    EXPECT_EQ(huge.finish_reason, "stop");
}

TEST(DemoAnswerTest, PromptTokenCount) {
    // Verifies prompt_tokens = ceil(characters of all message text / 4) + 1.
    // "abcd" + "hello" = 9 characters -> ceil(9/4) + 1 = 4.
    EXPECT_EQ(Answer(Parse(R"({"messages":[{"role":"system","content":"abcd"},)"
                           R"({"role":"user","content":"hello"}]})"))
                  .prompt_tokens,
              4);
    // Text parts count, other parts do not: "ab" + "cd" = 4 characters -> 1 + 1 = 2.
    EXPECT_EQ(Answer(Parse(R"({"messages":[{"role":"user","content":[{"type":"text","text":"ab"},)"
                           R"({"type":"image_url","image_url":{"url":"https://x/y.png"}},)"
                           R"({"type":"text","text":"cd"}]}]})"))
                  .prompt_tokens,
              2);
    // An empty message still costs one token.
    EXPECT_EQ(Answer(Parse(R"({"messages":[{"role":"user","content":""}]})")).prompt_tokens, 1);
}

TEST(DemoAnswerTest, PromptRequests) {
    // Verifies that a legacy prompt is echoed and counted like a user message.
    const DemoAnswer a = Answer(Parse(R"({"prompt":"Hi there"})"));  // 8 chars -> 2 + 1
    EXPECT_EQ(a.prompt_tokens, 3);
    EXPECT_NE(Join(a).find("You said: \"Hi there\""), std::string::npos) << Join(a);
}

TEST(DemoAnswerTest, LongMessagesAreTruncatedInTheEcho) {
    // Verifies that the echo keeps 200 characters and an ellipsis.
    const std::string long_text(300, 'z');
    const DemoAnswer a =
        Answer(Parse(R"({"messages":[{"role":"user","content":")" + long_text + "\"}]}"));
    EXPECT_NE(Join(a).find("\"" + std::string(200, 'z') + "...\""), std::string::npos);
    EXPECT_EQ(Join(a).find(std::string(201, 'z')), std::string::npos);
    EXPECT_EQ(a.prompt_tokens, 300 / 4 + 1);
}

}  // namespace
}  // namespace beacon::providers::demo
