#include "providers/openai_compatible/translate.h"

#include <boost/json/serialize.hpp>

namespace beacon::providers::openai_compatible {
namespace json = boost::json;

std::string BuildUpstreamBody(const api::ChatRequest& request, std::string_view upstream_model,
                              bool stream) {
    // Fields that only Beacon (or OpenRouter's router) understands. `user` is kept for
    // Broadcast and not forwarded, like `session_id` and `trace`.
    static constexpr std::string_view kBeaconOnly[] = {
        "models",     "route", "provider", "transforms", "plugins", "usage",         "user",
        "session_id", "trace", "debug",    "metadata",   "prompt",  "stream_options"};
    json::object body = request.body;
    for (auto key : kBeaconOnly) body.erase(key);
    body["model"] = upstream_model;
    if (auto m = request.body.if_contains("messages"); !m || m->is_null()) {
        // Legacy `prompt` requests become one user message.
        json::object msg{{"role", "user"}};
        if (auto p = request.body.if_contains("prompt")) msg["content"] = *p;
        body["messages"] = json::array{std::move(msg)};
    }
    if (stream) {
        body["stream"] = true;
        body["stream_options"] = json::object{{"include_usage", true}};
    } else {
        body.erase("stream");
    }
    return json::serialize(body);
}

}  // namespace beacon::providers::openai_compatible
