#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "base/crypto.h"
#include "broadcast/destinations/langfuse/mapping.h"

namespace beacon::broadcast::langfuse {
namespace {

namespace json = boost::json;

trace::TraceRecord BaseRecord() {
    trace::TraceRecord r;
    r.generation_id = "gen-1700000000-abcdefghijklmnopqrst";
    r.api_key_name = "app";
    r.model = "openai/gpt-4o";
    r.provider = "OpenAI";
    r.model_parameters_json = R"({"temperature":0.5,"stream":false})";
    r.input_json = R"([{"role":"user","content":"hello"}])";
    r.output_text = "hi there";
    r.finish_reason = "stop";
    r.native_finish_reason = "stop";
    r.usage = {120, 30, 150, 20, 5, true};
    r.cost = {0.0003, 0.0003, 0.0006};
    r.start_ns = 1700000000123000000;
    r.end_ns = 1700000001456000000;
    r.attempts.push_back({"openai/gpt-4o", "OpenAI", 200, "", 12.5});
    return r;
}

std::string Meta(const std::vector<std::pair<std::string_view, std::string>>& kv,
                 std::string_view key) {
    for (const auto& [k, v] : kv) {
        if (k == key) return v;
    }
    return "<absent>";
}

// Verifies 32-hex trace ids are kept and anything else is hashed to the first 32 hex of sha256.
TEST(LangfuseIds, TraceIdKeepsHexAndHashesOtherStrings) {
    const std::string hex = "0123456789abcdef0123456789abcdef";
    EXPECT_EQ(TraceIdFrom(hex), hex);
    EXPECT_EQ(TraceIdFrom("workflow_12345"), base::Sha256Hex("workflow_12345").substr(0, 32));
    // Uppercase hex is not OTel's form, so it is hashed too.
    EXPECT_EQ(TraceIdFrom("0123456789ABCDEF0123456789ABCDEF"),
              base::Sha256Hex("0123456789ABCDEF0123456789ABCDEF").substr(0, 32));
}

// Verifies 16-hex observation ids are kept and other strings hashed to 16 hex.
TEST(LangfuseIds, ObservationIdKeepsHexAndHashesOtherStrings) {
    EXPECT_EQ(ObservationIdFrom("a1b2c3d4e5f60718"), "a1b2c3d4e5f60718");
    EXPECT_EQ(ObservationIdFrom("my-span"), base::Sha256Hex("my-span").substr(0, 16));
}

// Verifies the environment rule: lowercased, [a-z0-9_-]{1,40}, not starting with langfuse.
TEST(LangfuseEnvironment, Normalizes) {
    EXPECT_EQ(NormalizeEnvironment("production").name, "production");
    EXPECT_EQ(NormalizeEnvironment("Production").name, "production");
    EXPECT_TRUE(NormalizeEnvironment("Production").rejected.empty());
    auto bad = NormalizeEnvironment("prod env!");
    EXPECT_EQ(bad.name, "default");
    EXPECT_EQ(bad.rejected, "prod env!");
    EXPECT_EQ(NormalizeEnvironment("langfuse-prod").name, "default");
    EXPECT_EQ(NormalizeEnvironment(std::string(41, 'a')).name, "default");
    EXPECT_EQ(NormalizeEnvironment(std::string(40, 'a')).name, std::string(40, 'a'));
    EXPECT_EQ(NormalizeEnvironment("").name, "default");
}

// Verifies defaults when the request had no trace object.
TEST(LangfuseMap, DefaultsWithoutTraceObject) {
    auto r = BaseRecord();
    Mapped m = Map(r, false);
    EXPECT_EQ(m.trace_id, base::Sha256Hex(r.generation_id).substr(0, 32));
    EXPECT_EQ(m.generation_id, base::Sha256Hex(r.generation_id).substr(0, 16));
    EXPECT_FALSE(m.span_id.has_value());
    EXPECT_TRUE(m.parent_id.empty());
    EXPECT_EQ(m.trace_name, "LLM Request");
    EXPECT_EQ(m.generation_name, "LLM Generation");
    EXPECT_EQ(m.environment, "default");
    EXPECT_EQ(m.level, Level::kDefault);
    EXPECT_EQ(m.input_json().value(), r.input_json);
    EXPECT_EQ(json::parse(*m.output_json),
              json::parse(R"({"role":"assistant","content":"hi there"})"));
}

// Verifies the model parameters shown with a generation: the request's sampling fields present
// and not null, in the request's order, as they were sent (numbers, arrays), then stream; nothing
// else of the request.
TEST(LangfuseMap, ModelParametersAreTheSamplingFieldsAsText) {
    const auto body = json::parse(R"({"model":"m","temperature":0.2,"messages":[],"top_p":null,)"
                                  R"("max_tokens":64,"stop":["\n","END"],"user":"u","seed":7})")
                          .as_object();
    const std::string text = trace::ModelParametersJson(body, true);
    EXPECT_EQ(text,
              R"({"temperature":0.2,"max_tokens":64,"stop":["\n","END"],"seed":7,"stream":true})");
    EXPECT_EQ(trace::ModelParametersJson(json::object{}, false), R"({"stream":false})");
    trace::TraceRecord r;
    r.model_parameters_json = text;
    EXPECT_EQ(json::parse(Map(r, false).model_parameters_json), json::parse(text));
}

// Verifies usage is split into disjoint keys with an explicit total, and cost has a total.
TEST(LangfuseMap, UsageAndCostDetails) {
    const auto r = BaseRecord();
    Mapped m = Map(r, false);
    EXPECT_EQ(
        json::parse(m.usage_details_json),
        json::parse(
            R"({"input":100,"input_cached_tokens":20,"output":25,"output_reasoning_tokens":5,"total":150})"));
    auto cost = json::parse(m.cost_details_json).as_object();
    EXPECT_DOUBLE_EQ(cost.at("input").to_number<double>(), 0.0003);
    EXPECT_DOUBLE_EQ(cost.at("output").to_number<double>(), 0.0003);
    EXPECT_DOUBLE_EQ(cost.at("total").to_number<double>(), 0.0006);
}

// Verifies the trace object's known and extra keys map to ids, names and metadata.
TEST(LangfuseMap, TraceObjectShapesTheTrace) {
    auto r = BaseRecord();
    r.trace.present = true;
    r.trace.trace_id = "workflow_12345";
    r.trace.trace_name = "Document Processing Pipeline";
    r.trace.span_name = "Summarization Step";
    r.trace.generation_name = "Generate Summary";
    r.trace.parent_span_id = "upstream span";
    r.trace.extra = {{"environment", json::value("Production")},
                     {"pipeline_version", json::value("2.1.0")},
                     {"count", json::value(3)},
                     {"flags", json::parse(R"({"a":true})")},
                     {"tags", json::parse(R"(["b","a","b"])")},
                     {"release", json::value("r1")},
                     {"version", json::value("v2")}};
    Mapped m = Map(r, false);
    EXPECT_EQ(m.trace_id, base::Sha256Hex("workflow_12345").substr(0, 32));
    ASSERT_TRUE(m.span_id.has_value());
    EXPECT_EQ(*m.span_id, base::Sha256Hex(r.generation_id + ":span").substr(0, 16));
    EXPECT_EQ(m.parent_id, base::Sha256Hex("upstream span").substr(0, 16));
    EXPECT_EQ(m.span_name, "Summarization Step");
    EXPECT_EQ(m.generation_name, "Generate Summary");
    EXPECT_EQ(m.environment, "production");
    EXPECT_EQ(Meta(m.trace_metadata, "pipeline_version"), "2.1.0");
    EXPECT_EQ(Meta(m.trace_metadata, "count"), "3");
    EXPECT_EQ(Meta(m.trace_metadata, "flags"), R"({"a":true})");
    EXPECT_EQ(Meta(m.trace_metadata, "environment"), "<absent>");
    EXPECT_EQ(m.tags, (std::vector<std::string_view>{"a", "b"}));
    EXPECT_EQ(m.release, "r1");
    EXPECT_EQ(m.version, "v2");
}

// Verifies an unusable environment becomes "default" and keeps the original in metadata.
TEST(LangfuseMap, BadEnvironmentGoesToMetadata) {
    auto r = BaseRecord();
    r.trace.extra = {{"environment", json::value("prod env!")}};
    Mapped m = Map(r, false);
    EXPECT_EQ(m.environment, "default");
    EXPECT_EQ(Meta(m.trace_metadata, "environment"), "prod env!");
}

// Verifies levels: length is a warning, cancellation a warning, failures an error.
TEST(LangfuseMap, Levels) {
    auto r = BaseRecord();
    r.finish_reason = "length";
    EXPECT_EQ(Map(r, false).level, Level::kWarning);
    r.finish_reason = "stop";
    r.outcome = trace::Outcome::kCancelled;
    Mapped c = Map(r, false);
    EXPECT_EQ(c.level, Level::kWarning);
    EXPECT_EQ(c.status_message.rfind("cancelled", 0), 0u);
    r.outcome = trace::Outcome::kFailed;
    r.status = 502;
    r.error_type = "provider_unavailable";
    r.error = "upstream said: secret prompt echoed";
    Mapped f = Map(r, false);
    EXPECT_EQ(f.level, Level::kError);
    EXPECT_EQ(f.status_message, r.error);
}

// Verifies Privacy Mode drops content from input, output, status messages and attempts.
TEST(LangfuseMap, PrivacyModeDropsContent) {
    auto r = BaseRecord();
    r.outcome = trace::Outcome::kFailed;
    r.status = 502;
    r.error_type = "provider_unavailable";
    r.error = "echo: PLANTED";
    r.output_text = "PLANTED";
    r.attempts[0].error = "PLANTED";
    Mapped m = Map(r, true);
    EXPECT_FALSE(m.input_json().has_value());
    EXPECT_FALSE(m.output_json.has_value());
    EXPECT_EQ(m.status_message, "provider_unavailable (502)");
    EXPECT_EQ(Meta(m.observation_metadata, "attempts").find("PLANTED"), std::string::npos);
    const std::string otlp = EncodeOtlp({std::make_shared<trace::TraceRecord>(r)}, true);
    EXPECT_EQ(otlp.find("PLANTED"), std::string::npos);
    const std::string legacy =
        EncodeIngestion({std::make_shared<trace::TraceRecord>(r)}, true).body;
    EXPECT_EQ(legacy.find("PLANTED"), std::string::npos);
    EXPECT_NE(EncodeOtlp({std::make_shared<trace::TraceRecord>(r)}, false).find("PLANTED"),
              std::string::npos);
}

// Verifies the OTLP body is valid JSON with typed attributes and string nanosecond times.
TEST(LangfuseOtlp, WellFormed) {
    auto r = BaseRecord();
    r.trace.span_name = "step";
    r.first_token_ns = 1700000000500000000;
    r.output_text = "quote \" backslash \\ newline \n emoji \xF0\x9F\x98\x80";
    auto body = json::parse(EncodeOtlp({std::make_shared<trace::TraceRecord>(r)}, false));
    const auto& rs = body.at("resourceSpans").as_array();
    ASSERT_EQ(rs.size(), 1u);
    const auto& spans = rs[0].at("scopeSpans").at(0).at("spans").as_array();
    ASSERT_EQ(spans.size(), 2u);
    const auto& span = spans[0].as_object();
    const auto& gen = spans[1].as_object();
    EXPECT_EQ(gen.at("parentSpanId"), span.at("spanId"));
    EXPECT_FALSE(span.contains("parentSpanId"));
    EXPECT_EQ(gen.at("startTimeUnixNano"), json::value("1700000000123000000"));
    EXPECT_EQ(gen.at("status").at("code"), json::value(1));
    bool saw_ttft = false;
    std::string output;
    for (const auto& a : gen.at("attributes").as_array()) {
        const auto& value = a.at("value").as_object();
        EXPECT_EQ(value.size(), 1u);
        if (a.at("key") == "langfuse.observation.completion_start_time") {
            EXPECT_EQ(value.at("stringValue"), json::value("2023-11-14T22:13:20.500Z"));
            saw_ttft = true;
        }
        if (a.at("key") == "langfuse.observation.output") {
            output = std::string(value.at("stringValue").as_string());
        }
    }
    EXPECT_TRUE(saw_ttft);
    EXPECT_EQ(json::parse(output).at("content"), json::value(r.output_text));
}

// Verifies a failed request's span status is the integer 2 with the message.
TEST(LangfuseOtlp, ErrorStatusIsIntegerTwo) {
    auto r = BaseRecord();
    r.outcome = trace::Outcome::kRejected;
    r.status = 400;
    r.error = "temperature: expected a number";
    auto body = json::parse(EncodeOtlp({std::make_shared<trace::TraceRecord>(r)}, false));
    const auto& gen = body.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").at(0);
    EXPECT_EQ(gen.at("status").at("code"), json::value(2));
    EXPECT_EQ(gen.at("status").at("message"), json::value(r.error));
}

// Verifies records with different environments land in separate resources.
TEST(LangfuseOtlp, GroupsByEnvironment) {
    auto a = BaseRecord();
    auto b = BaseRecord();
    b.generation_id = "gen-2";
    b.trace.extra = {{"environment", json::value("staging")}};
    auto body = json::parse(EncodeOtlp(
        {std::make_shared<trace::TraceRecord>(a), std::make_shared<trace::TraceRecord>(b)}, false));
    EXPECT_EQ(body.at("resourceSpans").as_array().size(), 2u);
}

// Verifies legacy events: deterministic ids (identical on retry), owners, and body fields.
TEST(LangfuseIngestion, DeterministicEvents) {
    auto r = BaseRecord();
    r.trace.span_name = "step";
    auto rec = std::make_shared<trace::TraceRecord>(r);
    auto first = EncodeIngestion({rec, rec}, false);
    auto second = EncodeIngestion({rec, rec}, false);
    EXPECT_EQ(first.body, second.body);
    ASSERT_EQ(first.event_owner.size(), 6u);
    EXPECT_EQ(first.event_owner[0].second, 0u);
    EXPECT_EQ(first.event_owner[5].second, 1u);
    auto body = json::parse(first.body);
    const auto& batch = body.at("batch").as_array();
    EXPECT_EQ(batch[0].at("type"), json::value("trace-create"));
    EXPECT_EQ(batch[1].at("type"), json::value("span-create"));
    EXPECT_EQ(batch[2].at("type"), json::value("generation-create"));
    const auto& gen = batch[2].at("body").as_object();
    EXPECT_EQ(gen.at("parentObservationId"), batch[1].at("body").at("id"));
    EXPECT_EQ(gen.at("usageDetails").at("total"), json::value(150));
    EXPECT_EQ(gen.at("input"), json::parse(r.input_json));
    EXPECT_EQ(batch[0].at("timestamp").as_string().back(), 'Z');
}

// Verifies content over the export limit is replaced by a note instead of breaking the batch.
TEST(LangfuseMap, HugeContentIsReplaced) {
    auto r = BaseRecord();
    r.input_json = "\"" + std::string(kMaxContentBytes + 10, 'x') + "\"";
    Mapped m = Map(r, false);
    ASSERT_TRUE(m.input_json().has_value());
    EXPECT_LT(m.input_json()->size(), 200u);
    EXPECT_TRUE(json::parse(*m.input_json()).is_string());
}

}  // namespace
}  // namespace beacon::broadcast::langfuse
