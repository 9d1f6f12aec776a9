#include "providers/openai_compatible/translate.h"

#include <algorithm>
#include <iterator>

#include "base/json_text.h"

namespace beacon::providers::openai_compatible {
namespace json = boost::json;

std::string BuildUpstreamBody(const api::ChatRequest& request, std::string_view upstream_model,
                              bool stream) {
    // Fields that only Beacon (or OpenRouter's router) understands. `user` is kept for
    // Broadcast and not forwarded, like `session_id` and `trace`. `model` and `stream` are
    // written here. The request's members are written as they are, never copied into a new
    // object first (that copy was a third of this function).
    static constexpr std::string_view kNotCopied[] = {
        "models",   "route",  "provider",       "transforms", "plugins",
        "usage",    "user",   "session_id",     "trace",      "debug",
        "metadata", "prompt", "stream_options", "model",      "stream"};
    const json::value* messages = request.body.if_contains("messages");
    const bool legacy = !messages || messages->is_null();
    std::string out;
    out.reserve(1024);
    out += R"({"model":)";
    base::AppendJsonString(out, upstream_model);
    for (const auto& member : request.body) {
        const std::string_view key = member.key();
        if (std::find(std::begin(kNotCopied), std::end(kNotCopied), key) != std::end(kNotCopied)) {
            continue;
        }
        if (legacy && key == "messages") continue;
        out.push_back(',');
        base::AppendJsonString(out, key);
        out.push_back(':');
        if (key == "messages" && !request.messages_json.empty()) {
            out += request.messages_json;  // the same text, written once at parse
        } else {
            base::AppendJsonValue(out, member.value());
        }
    }
    if (legacy) {
        // Legacy `prompt` requests become one user message.
        out += R"(,"messages":[{"role":"user")";
        if (const json::value* prompt = request.body.if_contains("prompt")) {
            out += R"(,"content":)";
            base::AppendJsonValue(out, *prompt);
        }
        out += "}]";
    }
    if (stream) out += R"(,"stream":true,"stream_options":{"include_usage":true})";
    out.push_back('}');
    return out;
}

}  // namespace beacon::providers::openai_compatible
