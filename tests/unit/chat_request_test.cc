#include "api/chat_request.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <string>
#include <string_view>

#include "base/json_arena.h"

namespace beacon::api {
namespace {

namespace json = boost::json;

constexpr std::string_view kMessages = R"("messages":[{"role":"user","content":"hi"}])";

// A valid request with `extra` members appended (`extra` starts with a comma when non-empty).
std::string Body(std::string_view extra) {
    return std::string(R"({"model":"openai/gpt-4o",)") + std::string(kMessages) +
           std::string(extra) + "}";
}

// The error message, or "ok" when the body is accepted.
std::string Outcome(std::string_view body) {
    auto r = ParseChatRequest(body);
    return r ? "ok" : r.error().message;
}

std::string Repeat(char c, size_t n) { return std::string(n, c); }

// --- the body as a whole -----------------------------------------------------------------------

TEST(ChatRequestTest, AcceptsMinimalRequest) {
    // Verifies that a minimal request parses and exposes model, stream and the body as received.
    auto r = ParseChatRequest(Body(""));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->model, "openai/gpt-4o");
    EXPECT_FALSE(r->stream);
    EXPECT_TRUE(r->models.empty());
    EXPECT_TRUE(r->user.empty());
    EXPECT_TRUE(r->session_id.empty());
    EXPECT_FALSE(r->trace.present);
    ASSERT_TRUE(r->body.contains("messages"));
    EXPECT_EQ(r->body.at("messages").as_array().size(), 1u);
}

TEST(ChatRequestTest, ModelMayBeAbsent) {
    // Verifies that `model` is optional (the configured default applies) and stays empty.
    auto r = ParseChatRequest(std::string("{") + std::string(kMessages) + "}");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->model, "");
}

TEST(ChatRequestTest, RejectsMalformedJson) {
    // Verifies that bodies that are not JSON are rejected with a "body: malformed JSON" message.
    for (std::string_view body : {"", "{", "{\"model\":}", "{} trailing", "nul", "{'a':1}"}) {
        EXPECT_EQ(Outcome(body).rfind("body: malformed JSON (", 0), 0u) << body;
    }
}

TEST(ChatRequestTest, RejectsNonObjectBody) {
    // Verifies that well-formed JSON that is not an object is rejected.
    for (std::string_view body : {"[]", "1", "\"messages\"", "null", "true"}) {
        EXPECT_EQ(Outcome(body), "body: expected a JSON object") << body;
    }
}

TEST(ChatRequestTest, ModelAndModelsAndStream) {
    // Verifies parsing of `models` and `stream`, and the type errors naming those fields.
    auto r = ParseChatRequest(Body(R"(,"models":["a/b","c/d"],"stream":true)"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->models, (std::vector<std::string>{"a/b", "c/d"}));
    EXPECT_TRUE(r->stream);

    EXPECT_EQ(Outcome(std::string(R"({"model":5,)") + std::string(kMessages) + "}"),
              "model: expected a string, got a number");
    EXPECT_EQ(Outcome(std::string(R"({"model":")") + Repeat('m', 257) + "\"," +
                      std::string(kMessages) + "}"),
              "model: must be at most 256 characters");
    EXPECT_EQ(Outcome(Body(R"(,"models":"a/b")")), "models: expected an array, got a string");
    EXPECT_EQ(Outcome(Body(R"(,"models":["a/b",3])")), "models[]: expected a string, got a number");
    EXPECT_EQ(Outcome(Body(R"(,"stream":"true")")), "stream: expected a boolean, got a string");
    EXPECT_EQ(Outcome(Body(R"(,"stream":1)")), "stream: expected a boolean, got a number");
    EXPECT_EQ(Outcome(Body(R"(,"stream":null)")), "ok");
}

// --- messages ----------------------------------------------------------------------------------

TEST(ChatRequestTest, MessagesMissing) {
    // Verifies that a request without messages (or prompt) is rejected, naming `messages`.
    EXPECT_EQ(Outcome(R"({"model":"a/b"})"), "messages: required (an array of messages)");
    EXPECT_EQ(Outcome(R"({"messages":null})"), "messages: required (an array of messages)");
}

TEST(ChatRequestTest, MessagesEmptyOrWrongType) {
    // Verifies the errors for an empty messages array and for messages of the wrong type.
    EXPECT_EQ(Outcome(R"({"messages":[]})"), "messages: must contain at least one message");
    EXPECT_EQ(Outcome(R"({"messages":"hi"})"), "messages: expected an array, got a string");
    EXPECT_EQ(Outcome(R"({"messages":{"role":"user"}})"),
              "messages: expected an array, got an object");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user","content":"a"},7]})"),
              "messages[1]: expected an object, got a number");
}

TEST(ChatRequestTest, MessageRole) {
    // Verifies that every allowed role is accepted and a missing, non-string or unknown role is
    // rejected with the message's index.
    for (std::string_view role : {"system", "developer", "user", "assistant"}) {
        EXPECT_EQ(Outcome(std::string(R"({"messages":[{"role":")") + std::string(role) +
                          R"(","content":"x"}]})"),
                  "ok")
            << role;
    }
    EXPECT_EQ(Outcome(R"({"messages":[{"content":"x"}]})"), "messages[0].role: required string");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":1,"content":"x"}]})"),
              "messages[0].role: required string");
    EXPECT_EQ(
        Outcome(R"({"messages":[{"role":"user","content":"a"},{"role":"bot","content":"x"}]})"),
        "messages[1].role: must be one of system, developer, user, assistant, tool");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"User","content":"x"}]})"),
              "messages[0].role: must be one of system, developer, user, assistant, tool");
}

TEST(ChatRequestTest, MessageContent) {
    // Verifies the content rules: required except for assistant, string/array/null allowed,
    // parts must be objects with a string type, and text parts need a string text.
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user"}]})"), "messages[0].content: required");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"assistant"}]})"), "ok");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user","content":null}]})"), "ok");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user","content":5}]})"),
              "messages[0].content: expected a string or an array of parts, got a number");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},)"
                      R"({"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]})"),
              "ok");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user","content":["a"]}]})"),
              "messages[0].content[0]: expected an object, got a string");
    EXPECT_EQ(
        Outcome(
            R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"text":"b"}]}]})"),
        "messages[0].content[1].type: required string");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})"),
              "messages[0].content[0].text: required string");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user","content":[{"type":"text","text":1}]}]})"),
              "messages[0].content[0].text: required string");
}

TEST(ChatRequestTest, ToolMessagesNeedToolCallId) {
    // Verifies that role "tool" requires a string tool_call_id and tool_calls must be an array.
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"tool","content":"42"}]})"),
              "messages[0].tool_call_id: required string for role tool");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"tool","content":"42","tool_call_id":7}]})"),
              "messages[0].tool_call_id: required string for role tool");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"tool","content":"42","tool_call_id":"call_1"}]})"),
              "ok");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c",)"
                      R"("type":"function","function":{"name":"f","arguments":"{}"}}]}]})"),
              "ok");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"assistant","tool_calls":{"id":"c"}}]})"),
              "messages[0].tool_calls: expected an array, got an object");
}

TEST(ChatRequestTest, PromptInsteadOfMessages) {
    // Verifies that a string `prompt` replaces messages and a non-string prompt is rejected.
    auto r = ParseChatRequest(R"({"model":"a/b","prompt":"Say hi"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->body.at("prompt").as_string(), "Say hi");
    EXPECT_EQ(Outcome(R"({"prompt":["Say hi"]})"), "prompt: expected a string, got an array");
    EXPECT_EQ(Outcome(R"({"messages":null,"prompt":"x"})"), "ok");
    // When both are present, messages are validated and win.
    EXPECT_EQ(Outcome(R"({"messages":[],"prompt":"x"})"),
              "messages: must contain at least one message");
}

// --- sampling parameters -----------------------------------------------------------------------

struct RangeCase {
    const char* field;
    const char* value;
    const char* expected;  // "ok" or the full error message
};

void PrintTo(const RangeCase& c, std::ostream* os) { *os << c.field << "=" << c.value; }

class ChatRequestRangeTest : public testing::TestWithParam<RangeCase> {};

TEST_P(ChatRequestRangeTest, Validates) {
    // Verifies one sampling parameter value against its documented range, boundaries included.
    const auto& c = GetParam();
    EXPECT_EQ(Outcome(Body(std::string(",\"") + c.field + "\":" + c.value)), c.expected)
        << c.field << "=" << c.value;
}

INSTANTIATE_TEST_SUITE_P(
    Sampling, ChatRequestRangeTest,
    testing::Values(
        RangeCase{"temperature", "0", "ok"}, RangeCase{"temperature", "2", "ok"},
        RangeCase{"temperature", "0.7", "ok"}, RangeCase{"temperature", "null", "ok"},
        RangeCase{"temperature", "-0.0001", "temperature: expected a number between 0 and 2"},
        RangeCase{"temperature", "2.0001", "temperature: expected a number between 0 and 2"},
        RangeCase{"temperature", "1e309", "temperature: number out of range"},
        RangeCase{"temperature", "\"1\"",
                  "temperature: expected a number between 0 and 2, got a string"},
        RangeCase{"temperature", "true",
                  "temperature: expected a number between 0 and 2, got a boolean"},
        RangeCase{"top_p", "0", "ok"}, RangeCase{"top_p", "1", "ok"},
        RangeCase{"top_p", "1.01", "top_p: expected a number between 0 and 1"},
        RangeCase{"top_p", "-1", "top_p: expected a number between 0 and 1"},
        RangeCase{"frequency_penalty", "-2", "ok"}, RangeCase{"frequency_penalty", "2", "ok"},
        RangeCase{"frequency_penalty", "-2.5",
                  "frequency_penalty: expected a number between -2 and 2"},
        RangeCase{"frequency_penalty", "3",
                  "frequency_penalty: expected a number between -2 and 2"},
        RangeCase{"presence_penalty", "-2", "ok"}, RangeCase{"presence_penalty", "2", "ok"},
        RangeCase{"presence_penalty", "2.1",
                  "presence_penalty: expected a number between -2 and 2"},
        RangeCase{"repetition_penalty", "0", "ok"}, RangeCase{"repetition_penalty", "2", "ok"},
        RangeCase{"repetition_penalty", "-0.1",
                  "repetition_penalty: expected a number between 0 and 2"},
        RangeCase{"min_p", "0", "ok"}, RangeCase{"min_p", "1", "ok"},
        RangeCase{"min_p", "1.5", "min_p: expected a number between 0 and 1"},
        RangeCase{"top_a", "0", "ok"}, RangeCase{"top_a", "1", "ok"},
        RangeCase{"top_a", "-0.5", "top_a: expected a number between 0 and 1"},
        // Integers.
        RangeCase{"max_tokens", "1", "ok"}, RangeCase{"max_tokens", "4096", "ok"},
        RangeCase{"max_tokens", "2.0", "ok"},
        RangeCase{"max_tokens", "0", "max_tokens: expected an integer >= 1"},
        RangeCase{"max_tokens", "-5", "max_tokens: expected an integer >= 1"},
        RangeCase{"max_tokens", "1.5", "max_tokens: expected an integer >= 1, got a number"},
        RangeCase{"max_tokens", "\"10\"", "max_tokens: expected an integer >= 1, got a string"},
        RangeCase{"max_completion_tokens", "1", "ok"},
        RangeCase{"max_completion_tokens", "0", "max_completion_tokens: expected an integer >= 1"},
        RangeCase{"top_k", "0", "ok"}, RangeCase{"top_k", "40", "ok"},
        RangeCase{"top_k", "-1", "top_k: expected an integer >= 0"},
        RangeCase{"top_k", "0.5", "top_k: expected an integer >= 0, got a number"},
        RangeCase{"top_logprobs", "0", "ok"}, RangeCase{"top_logprobs", "20", "ok"},
        RangeCase{"top_logprobs", "21", "top_logprobs: expected an integer between 0 and 20"},
        RangeCase{"top_logprobs", "-1", "top_logprobs: expected an integer between 0 and 20"},
        RangeCase{"seed", "-9223372036854775808", "ok"},
        RangeCase{"seed", "18446744073709551615", "ok"}, RangeCase{"seed", "42", "ok"},
        RangeCase{"seed", "4.2", "seed: expected an integer >= -9223372036854775808, got a number"},
        // Booleans, arrays and objects passed through to providers.
        RangeCase{"logprobs", "true", "ok"},
        RangeCase{"logprobs", "1", "logprobs: expected a boolean, got a number"},
        RangeCase{"parallel_tool_calls", "\"yes\"",
                  "parallel_tool_calls: expected a boolean, got a string"},
        RangeCase{"tools", "[]", "ok"},
        RangeCase{"tools", "{}", "tools: expected an array, got an object"},
        RangeCase{"response_format", "{\"type\":\"json_object\"}", "ok"},
        RangeCase{"response_format", "\"json\"",
                  "response_format: expected an object, got a string"},
        RangeCase{"provider", "[]", "provider: expected an object, got an array"},
        RangeCase{"reasoning", "true", "reasoning: expected an object, got a boolean"},
        RangeCase{"plugins", "{}", "plugins: expected an array, got an object"},
        RangeCase{"transforms", "\"middle-out\"", "transforms: expected an array, got a string"},
        RangeCase{"logit_bias", "[1]", "logit_bias: expected an object, got an array"},
        RangeCase{"stream_options", "1", "stream_options: expected an object, got a number"},
        RangeCase{"usage", "{\"include\":true}", "ok"},
        RangeCase{"usage", "true", "usage: expected an object, got a boolean"},
        RangeCase{"route", "\"fallback\"", "ok"},
        RangeCase{"route", "1", "route: expected a string, got a number"},
        // stop.
        RangeCase{"stop", "\"\\n\"", "ok"}, RangeCase{"stop", "[]", "ok"},
        RangeCase{"stop", "[\"a\",\"b\",\"c\",\"d\"]", "ok"},
        RangeCase{"stop", "[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop: at most 4 sequences"},
        RangeCase{"stop", "[\"a\",1]", "stop[]: expected a string, got a number"},
        RangeCase{"stop", "3", "stop: expected a string or an array of strings, got a number"},
        // tool_choice.
        RangeCase{"tool_choice", "\"auto\"", "ok"}, RangeCase{"tool_choice", "\"none\"", "ok"},
        RangeCase{"tool_choice", "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", "ok"},
        RangeCase{"tool_choice", "1", "tool_choice: expected a string or an object, got a number"},
        RangeCase{"tool_choice", "[\"auto\"]",
                  "tool_choice: expected a string or an object, got an array"}));

TEST(ChatRequestTest, IntegerLimitsAcceptHugeIntegralDoubles) {
    // Verifies that integral doubles beyond int64 pass the integer check (they are integers);
    // consumers must therefore convert them without assuming they fit in int64.
    EXPECT_EQ(Outcome(Body(R"(,"max_tokens":1e30)")), "ok");
    EXPECT_EQ(Outcome(Body(R"(,"seed":-1e30)")),
              "seed: expected an integer >= -9223372036854775808");
}

TEST(ChatRequestTest, RejectsNumbersBeyondDoubleRange) {
    // Verifies that a number that overflows a double anywhere in the body is rejected, naming its
    // path: it would otherwise be forwarded upstream as `Infinity`, which is not JSON.
    EXPECT_EQ(Outcome(Body(R"(,"x_vendor":{"a":[1,{"b":-1e400}]})")),
              "x_vendor.a[1].b: number out of range");
    EXPECT_EQ(Outcome(Body(R"(,"logit_bias":{"50256":18446744073e09551615})")),
              "logit_bias.50256: number out of range");
    EXPECT_EQ(Outcome(R"({"messages":[{"role":"user","content":"x","n":1e999}]})"),
              "messages[0].n: number out of range");
    // Underflow is not an error: it reads as 0.
    EXPECT_EQ(Outcome(Body(R"(,"temperature":1e-400)")), "ok");
    EXPECT_EQ(Outcome(Body(R"(,"max_tokens":1e300)")), "ok");
}

// --- metadata, user, session_id ----------------------------------------------------------------

std::string MetadataWith(size_t pairs, size_t key_len, size_t value_len) {
    std::string m = "{";
    for (size_t i = 0; i < pairs; ++i) {
        if (i) m += ",";
        std::string key = std::to_string(i);
        key += std::string(key_len > key.size() ? key_len - key.size() : 0, 'k');
        m += "\"" + key + "\":\"" + std::string(value_len, 'v') + "\"";
    }
    return m + "}";
}

TEST(ChatRequestTest, MetadataLimits) {
    // Verifies metadata: at most 16 pairs, keys at most 64 characters, string values at most 512.
    EXPECT_EQ(Outcome(Body(",\"metadata\":" + MetadataWith(16, 64, 512))), "ok");
    EXPECT_EQ(Outcome(Body(",\"metadata\":" + MetadataWith(17, 2, 1))),
              "metadata: at most 16 pairs");
    EXPECT_EQ(Outcome(Body(",\"metadata\":" + MetadataWith(1, 65, 1))),
              "metadata: keys are at most 64 characters");
    EXPECT_EQ(Outcome(Body(R"(,"metadata":{"k":")" + Repeat('v', 513) + "\"}")),
              "metadata.k: expected a string of at most 512 characters");
    EXPECT_EQ(Outcome(Body(R"(,"metadata":{"n":1})")),
              "metadata.n: expected a string of at most 512 characters");
    EXPECT_EQ(Outcome(Body(R"(,"metadata":["a"])")),
              "metadata: expected an object of strings, got an array");
    EXPECT_EQ(Outcome(Body(R"(,"metadata":null)")), "ok");
    EXPECT_EQ(Outcome(Body(R"(,"metadata":{})")), "ok");
}

TEST(ChatRequestTest, UserLimit) {
    // Verifies that `user` is kept and limited to 128 characters.
    auto r = ParseChatRequest(Body(",\"user\":\"" + Repeat('u', 128) + "\""));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->user, Repeat('u', 128));
    EXPECT_EQ(Outcome(Body(",\"user\":\"" + Repeat('u', 129) + "\"")),
              "user: must be at most 128 characters");
    EXPECT_EQ(Outcome(Body(R"(,"user":42)")), "user: expected a string, got a number");
}

TEST(ChatRequestTest, SessionIdLimit) {
    // Verifies that `session_id` is kept and limited to 256 characters, in the body and in the
    // x-session-id header.
    auto r = ParseChatRequest(Body(",\"session_id\":\"" + Repeat('s', 256) + "\""));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->session_id, Repeat('s', 256));
    EXPECT_EQ(Outcome(Body(",\"session_id\":\"" + Repeat('s', 257) + "\"")),
              "session_id: must be at most 256 characters");
    EXPECT_EQ(Outcome(Body(R"(,"session_id":{"id":1})")),
              "session_id: expected a string, got an object");

    EXPECT_EQ(ValidateSessionId(Repeat('s', 256)), std::nullopt);
    EXPECT_EQ(ValidateSessionId(""), std::nullopt);
    EXPECT_EQ(ValidateSessionId(Repeat('s', 257)),
              std::optional<std::string>("x-session-id: must be at most 256 characters"));
}

// --- trace ------------------------------------------------------------------------------------

TEST(ChatRequestTest, TraceKnownKeysAndExtraInOrder) {
    // Verifies that known trace keys fill their fields and every other key lands in `extra`, in
    // request order, with its JSON value (numbers, objects, arrays, null, booleans kept as is).
    auto r = ParseChatRequest(Body(
        R"(,"trace":{"zeta":"last-name-first","trace_id":"t-1","environment":"prod",)"
        R"("trace_name":"Checkout","n":3,"span_name":"S","nested":{"a":[1,2]},)"
        R"("generation_name":"G","parent_span_id":"p-9","flag":false,"none":null,"arr":["x"]})"));
    ASSERT_TRUE(r) << r.error().message;
    const auto& t = r->trace;
    EXPECT_TRUE(t.present);
    EXPECT_EQ(t.trace_id, "t-1");
    EXPECT_EQ(t.trace_name, "Checkout");
    EXPECT_EQ(t.span_name, "S");
    EXPECT_EQ(t.generation_name, "G");
    EXPECT_EQ(t.parent_span_id, "p-9");
    ASSERT_EQ(t.extra.size(), 7u);
    const char* keys[] = {"zeta", "environment", "n", "nested", "flag", "none", "arr"};
    const char* values[] = {
        "\"last-name-first\"", "\"prod\"", "3", "{\"a\":[1,2]}", "false", "null", "[\"x\"]"};
    for (size_t i = 0; i < t.extra.size(); ++i) {
        EXPECT_EQ(t.extra[i].first, keys[i]) << i;
        EXPECT_EQ(json::serialize(t.extra[i].second), values[i]) << i;
    }
}

TEST(ChatRequestTest, BodyLivesInTheArenaAndTraceValuesOutliveIt) {
    // Verifies that a body parsed into a request's arena stays there (moved, not copied into the
    // heap), while the trace's custom values, which the trace record keeps after the request,
    // are in default storage and still readable once the arena is gone (ASan checks the read).
    TraceOptions trace;
    {
        base::JsonArena arena;
        auto r = ParseChatRequest(Body(R"(,"trace":{"env":{"tier":"gold","n":[1,2]},"s":"x"})"),
                                  arena.storage());
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->body.storage().get(), arena.storage().get());
        EXPECT_EQ(r->body.at("messages").storage().get(), arena.storage().get());
        ASSERT_EQ(r->trace.extra.size(), 2u);
        for (const auto& [key, value] : r->trace.extra) {
            EXPECT_EQ(value.storage().get(), json::storage_ptr().get()) << key;
        }
        trace = std::move(r->trace);
    }
    ASSERT_EQ(trace.extra.size(), 2u);
    EXPECT_EQ(json::serialize(trace.extra[0].second), R"({"tier":"gold","n":[1,2]})");
    EXPECT_EQ(json::serialize(trace.extra[1].second), R"("x")");
}

TEST(ChatRequestTest, TraceEmptyAndAbsent) {
    // Verifies that an empty trace object is present with no fields and a null trace is absent.
    auto r = ParseChatRequest(Body(R"(,"trace":{})"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->trace.present);
    EXPECT_TRUE(r->trace.extra.empty());
    auto n = ParseChatRequest(Body(R"(,"trace":null)"));
    ASSERT_TRUE(n) << n.error().message;
    EXPECT_FALSE(n->trace.present);
}

TEST(ChatRequestTest, TraceErrors) {
    // Verifies trace type errors and the 1024-character limit on known keys, naming the key.
    EXPECT_EQ(Outcome(Body(R"(,"trace":"abc")")), "trace: expected an object, got a string");
    EXPECT_EQ(Outcome(Body(R"(,"trace":{"trace_id":5})")),
              "trace.trace_id: expected a string, got a number");
    EXPECT_EQ(Outcome(Body(R"(,"trace":{"span_name":["a"]})")),
              "trace.span_name: expected a string, got an array");
    EXPECT_EQ(Outcome(Body(",\"trace\":{\"trace_name\":\"" + Repeat('t', 1024) + "\"}")), "ok");
    EXPECT_EQ(Outcome(Body(",\"trace\":{\"generation_name\":\"" + Repeat('t', 1025) + "\"}")),
              "trace.generation_name: must be at most 1024 characters");
    // A known key set to null is treated as absent, not as custom metadata.
    auto r = ParseChatRequest(Body(R"(,"trace":{"trace_id":null})"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->trace.trace_id, "");
    EXPECT_TRUE(r->trace.extra.empty());
}

TEST(ChatRequestTest, UnknownFieldsAreKeptInBody) {
    // Verifies that fields Beacon does not know are kept in `body` for the provider adapters.
    auto r = ParseChatRequest(Body(R"(,"x_vendor_option":{"a":1},"debug":{"echo":true})"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(json::serialize(r->body.at("x_vendor_option")), R"({"a":1})");
    EXPECT_TRUE(r->body.contains("debug"));
}

}  // namespace
}  // namespace beacon::api
