#include "providers/openai_compatible/translate.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

namespace beacon::providers::openai_compatible {
namespace {

namespace json = boost::json;

api::ChatRequest Parse(std::string_view body) {
    auto r = api::ParseChatRequest(body);
    EXPECT_TRUE(r) << r.error().message;
    return r ? std::move(r.value()) : api::ChatRequest{};
}

json::object Upstream(std::string_view body, bool stream, std::string_view model = "gpt-4o") {
    const std::string out = BuildUpstreamBody(Parse(body), model, stream);
    boost::system::error_code ec;
    json::value v = json::parse(out, ec);
    EXPECT_FALSE(ec) << out;
    EXPECT_TRUE(v.is_object()) << out;
    return v.is_object() ? v.as_object() : json::object{};
}

// Every Beacon/OpenRouter-only field, with valid values.
constexpr std::string_view kEverything = R"({
  "model": "openai/gpt-4o",
  "models": ["openai/gpt-4o", "backup/model"],
  "route": "fallback",
  "provider": {"order": ["OpenAI"], "allow_fallbacks": true},
  "transforms": ["middle-out"],
  "plugins": [{"id": "web"}],
  "usage": {"include": true},
  "user": "user-42",
  "session_id": "sess-1",
  "trace": {"trace_name": "Checkout", "environment": "prod"},
  "debug": {"echo_upstream_body": true},
  "metadata": {"team": "checkout"},
  "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
  "temperature": 0.2,
  "top_p": 0.9,
  "top_k": 40,
  "frequency_penalty": 0.5,
  "presence_penalty": -0.5,
  "repetition_penalty": 1.1,
  "min_p": 0.05,
  "top_a": 0.1,
  "seed": 7,
  "max_tokens": 100,
  "max_completion_tokens": 120,
  "stop": ["\n\n", "END"],
  "logprobs": true,
  "top_logprobs": 3,
  "logit_bias": {"50256": -100},
  "response_format": {"type": "json_object"},
  "parallel_tool_calls": false,
  "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
  "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}}],
  "reasoning": {"effort": "high"},
  "x_vendor": {"k": [1, 2, 3]}
})";

TEST(TranslateTest, DropsBeaconOnlyFields) {
    // Verifies that routing, Broadcast and OpenRouter-only fields are not sent upstream.
    for (bool stream : {false, true}) {
        json::object up = Upstream(kEverything, stream);
        for (const char* key : {"models", "route", "provider", "transforms", "plugins", "usage",
                                "user", "session_id", "trace", "debug", "metadata", "prompt"}) {
            EXPECT_FALSE(up.contains(key)) << key << " stream=" << stream;
        }
    }
}

TEST(TranslateTest, KeepsSamplingFieldsAndToolsUntouched) {
    // Verifies that sampling parameters, tools and unknown fields are forwarded byte for byte.
    const json::object original = Parse(kEverything).body;
    json::object up = Upstream(kEverything, false);
    for (const char* key : {"messages",
                            "temperature",
                            "top_p",
                            "top_k",
                            "frequency_penalty",
                            "presence_penalty",
                            "repetition_penalty",
                            "min_p",
                            "top_a",
                            "seed",
                            "max_tokens",
                            "max_completion_tokens",
                            "stop",
                            "logprobs",
                            "top_logprobs",
                            "logit_bias",
                            "response_format",
                            "parallel_tool_calls",
                            "tool_choice",
                            "tools",
                            "reasoning",
                            "x_vendor"}) {
        ASSERT_TRUE(up.contains(key)) << key;
        EXPECT_EQ(json::serialize(up.at(key)), json::serialize(original.at(key))) << key;
    }
}

TEST(TranslateTest, SetsUpstreamModel) {
    // Verifies that `model` is replaced by the upstream name, also when the client sent none.
    EXPECT_EQ(Upstream(kEverything, false, "gpt-4o-2024-08-06").at("model").as_string(),
              "gpt-4o-2024-08-06");
    EXPECT_EQ(Upstream(R"({"messages":[{"role":"user","content":"x"}]})", false, "llama3")
                  .at("model")
                  .as_string(),
              "llama3");
}

TEST(TranslateTest, StreamAddsIncludeUsage) {
    // Verifies that streaming sets stream:true and stream_options.include_usage:true, replacing
    // whatever stream_options the client sent.
    json::object up =
        Upstream(R"({"model":"a/b","stream":true,"stream_options":{"include_usage":false,"x":1},)"
                 R"("messages":[{"role":"user","content":"x"}]})",
                 true);
    EXPECT_EQ(json::serialize(up.at("stream")), "true");
    EXPECT_EQ(json::serialize(up.at("stream_options")), R"({"include_usage":true})");
    // Also when the client body did not say stream (the gateway decides).
    json::object up2 = Upstream(R"({"messages":[{"role":"user","content":"x"}]})", true);
    EXPECT_EQ(json::serialize(up2.at("stream")), "true");
    EXPECT_EQ(json::serialize(up2.at("stream_options")), R"({"include_usage":true})");
}

TEST(TranslateTest, NonStreamRemovesStreamFields) {
    // Verifies that a non-streaming call sends neither stream nor stream_options.
    json::object up =
        Upstream(R"({"model":"a/b","stream":false,"stream_options":{"include_usage":true},)"
                 R"("messages":[{"role":"user","content":"x"}]})",
                 false);
    EXPECT_FALSE(up.contains("stream"));
    EXPECT_FALSE(up.contains("stream_options"));
}

TEST(TranslateTest, PromptBecomesUserMessage) {
    // Verifies that a legacy `prompt` request becomes one user message.
    json::object up =
        Upstream(R"({"model":"a/b","prompt":"Tell me a joke","temperature":1})", false);
    EXPECT_FALSE(up.contains("prompt"));
    EXPECT_EQ(json::serialize(up.at("messages")),
              R"([{"role":"user","content":"Tell me a joke"}])");
    EXPECT_EQ(json::serialize(up.at("temperature")), "1");
}

TEST(TranslateTest, PromptWithNullMessagesBecomesUserMessage) {
    // Verifies that `"messages": null` with a prompt (accepted by the parser) is translated too,
    // instead of sending a null messages field upstream.
    json::object up = Upstream(R"({"messages":null,"prompt":"Hi"})", false);
    EXPECT_EQ(json::serialize(up.at("messages")), R"([{"role":"user","content":"Hi"}])");
}

TEST(TranslateTest, MessagesWinOverPrompt) {
    // Verifies that when both are present, messages are sent as is and prompt is dropped.
    json::object up =
        Upstream(R"({"prompt":"ignored","messages":[{"role":"user","content":"m"}]})", false);
    EXPECT_EQ(json::serialize(up.at("messages")), R"([{"role":"user","content":"m"}])");
    EXPECT_FALSE(up.contains("prompt"));
}

TEST(TranslateTest, RequestIsNotModified) {
    // Verifies that building the upstream body leaves the parsed request intact (it is also
    // used for the trace and for fallback attempts).
    api::ChatRequest req = Parse(kEverything);
    const std::string before = json::serialize(req.body);
    (void)BuildUpstreamBody(req, "m1", true);
    (void)BuildUpstreamBody(req, "m2", false);
    EXPECT_EQ(json::serialize(req.body), before);
}

TEST(TranslateTest, MessagesAreTheTextWrittenAtParse) {
    // Verifies that the upstream body carries `messages` as the text the parser wrote once (also
    // the trace's input), and that a request without that text (built by hand) gets the same
    // bytes from the DOM.
    auto req = Parse(
        R"({"model":"openai/gpt-4o","messages":[{"role":"user","content":"Say \"hi\"\n"}],"temperature":0.5})");
    EXPECT_EQ(req.messages_json, R"([{"role":"user","content":"Say \"hi\"\n"}])");
    const std::string from_text = BuildUpstreamBody(req, "gpt-4o", false);
    EXPECT_NE(from_text.find(R"("messages":[{"role":"user","content":"Say \"hi\"\n"}])"),
              std::string::npos)
        << from_text;
    req.messages_json.clear();
    EXPECT_EQ(BuildUpstreamBody(req, "gpt-4o", false), from_text);
}

}  // namespace
}  // namespace beacon::providers::openai_compatible
