// Fuzzes the chat completions request parser on arbitrary bytes. When a request is accepted, the
// request must survive the rest of its pure path: the upstream body must be valid JSON without
// Beacon-only fields, and the demo model must answer without throwing.
#include <boost/json/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/chat_request.h"
#include "fuzz_check.h"
#include "providers/demo/demo_provider.h"
#include "providers/openai_compatible/translate.h"

namespace {

namespace json = boost::json;
using beacon::providers::openai_compatible::BuildUpstreamBody;

void CheckUpstreamBody(const beacon::api::ChatRequest& request, bool stream) {
    const std::string body = BuildUpstreamBody(request, "upstream-model", stream);
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    BEACON_FUZZ_CHECK(!ec, "the upstream body is not JSON");
    BEACON_FUZZ_CHECK(v.is_object(), "the upstream body is not an object");
    const json::object& obj = v.as_object();
    const json::value* model = obj.if_contains("model");
    BEACON_FUZZ_CHECK(model && model->is_string() && model->as_string() == "upstream-model",
                      "the upstream model is not set");
    const json::value* messages = obj.if_contains("messages");
    BEACON_FUZZ_CHECK(messages && messages->is_array() && !messages->as_array().empty(),
                      "the upstream body has no messages");
    for (std::string_view key : {"models", "route", "provider", "transforms", "plugins", "usage",
                                 "user", "session_id", "trace", "debug", "metadata", "prompt"}) {
        BEACON_FUZZ_CHECK(!obj.contains(key), "a Beacon-only field was forwarded");
    }
    if (stream) {
        const json::value* s = obj.if_contains("stream");
        BEACON_FUZZ_CHECK(s && s->is_bool() && s->as_bool(), "stream is not true");
    } else {
        BEACON_FUZZ_CHECK(!obj.contains("stream") && !obj.contains("stream_options"),
                          "a non-streaming body carries stream fields");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto request = beacon::api::ParseChatRequest(text);
    if (!request) {
        // Every rejection names what is wrong: "<field>: <what>".
        const std::string& message = request.error().message;
        BEACON_FUZZ_CHECK(message.find(": ") != std::string::npos, "an error names no field");
        return 0;
    }
    CheckUpstreamBody(*request, false);
    CheckUpstreamBody(*request, true);
    const auto answer = beacon::providers::demo::Answer(*request);
    BEACON_FUZZ_CHECK(!answer.pieces.empty(), "the demo answer is empty");
    BEACON_FUZZ_CHECK(answer.finish_reason == "stop" || answer.finish_reason == "length",
                      "the demo finish reason is not stop or length");
    BEACON_FUZZ_CHECK(answer.prompt_tokens >= 1, "the demo prompt token count is below 1");
    return 0;
}
