#include "providers/openai_compatible/openai_provider.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>

#include "api/sse.h"
#include "http/client.h"
#include "providers/openai_compatible/translate.h"

namespace beacon::providers::openai_compatible {
namespace asio = boost::asio;
namespace json = boost::json;
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr size_t kMaxResponseBody = 64 * 1024 * 1024;
constexpr size_t kMaxMessage = 1024;  // an upstream's error message, as we repeat it

AttemptError FromClientError(const http::ClientError& e) {
    using K = http::ClientError::Kind;
    AttemptError out;
    out.message = e.message;
    switch (e.kind) {
        case K::kBadUrl:
        case K::kDns:
        case K::kConnect:
        case K::kTls:
            out.kind = AttemptError::Kind::kConnect;
            break;
        case K::kTimeout:
            out.kind = AttemptError::Kind::kTimeout;
            break;
        case K::kCancelled:
            out.kind = AttemptError::Kind::kCancelled;
            break;
        case K::kProtocol:
            out.kind = AttemptError::Kind::kProtocol;
            break;
    }
    return out;
}

// The human message inside an upstream error body, when it has OpenAI's shape.
std::string UpstreamMessage(std::string_view raw, int status) {
    boost::system::error_code ec;
    auto v = json::parse(raw, ec);
    if (!ec && v.is_object()) {
        if (auto err = v.as_object().if_contains("error"); err && err->is_object()) {
            if (auto m = err->as_object().if_contains("message"); m && m->is_string()) {
                return std::string(m->as_string()).substr(0, kMaxMessage);
            }
        }
    }
    return "upstream answered HTTP " + std::to_string(status);
}

class OpenAiProvider final : public Provider {
  public:
    explicit OpenAiProvider(const config::ProviderConfig& config) : config_(config) {
        base_url_ = config.base_url;
        while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
        if (!config.api_key_env.empty()) {
            if (const char* key = std::getenv(config.api_key_env.c_str()); key && *key)
                api_key_ = key;
        }
        timeouts_.connect = std::chrono::milliseconds(config.connect_timeout_ms);
        timeouts_.first_byte = std::chrono::milliseconds(config.first_byte_timeout_ms);
        timeouts_.total = std::chrono::milliseconds(config.total_timeout_ms);
    }

    const std::string& name() const override { return config_.name; }
    const std::string& display_name() const override { return config_.display_name; }

    asio::awaitable<Result<json::object, AttemptError>> Complete(const Call& call) override {
        auto sent = co_await Send(call, false);
        if (!sent) co_return sent.error();
        auto& response = *sent.value();
        const bool ok_status = response.status() == 200;
        auto body = co_await response.ReadAll(ok_status ? kMaxResponseBody : kMaxErrorBody);
        if (!body) co_return FromClientError(body.error());
        if (!ok_status) co_return HttpError(response, std::move(body.value()));
        boost::system::error_code ec;
        auto v = json::parse(body.value(), ec, call.storage);
        if (ec || !v.is_object() || !v.as_object().contains("choices")) {
            if (!ec && v.is_object() && v.as_object().contains("error")) {
                // Some servers answer 200 with an error object.
                AttemptError e{AttemptError::Kind::kHttp,
                               502,
                               UpstreamMessage(body.value(), 502),
                               body.value().substr(0, kMaxErrorBody),
                               {}};
                co_return e;
            }
            co_return AttemptError{AttemptError::Kind::kProtocol,
                                   0,
                                   "the upstream answer is not a chat completion",
                                   body.value().substr(0, kMaxErrorBody),
                                   {}};
        }
        co_return std::move(v.as_object());
    }

    asio::awaitable<Result<bool, AttemptError>> Stream(const Call& call, ChunkSink& sink) override {
        auto sent = co_await Send(call, true);
        if (!sent) co_return sent.error();
        auto& response = *sent.value();
        if (response.status() != 200) {
            auto body = co_await response.ReadAll(kMaxErrorBody);
            if (!body) co_return FromClientError(body.error());
            co_return HttpError(response, std::move(body.value()));
        }
        api::SseParser parser;
        std::vector<api::SseEvent> events;
        bool done = false;
        while (!done) {
            auto piece = co_await response.Read();
            if (!piece) co_return FromClientError(piece.error());
            if (piece->empty()) break;  // end of body
            bool ok = parser.Feed(*piece,
                                  [&events](api::SseEvent&& e) { events.push_back(std::move(e)); });
            if (!ok) {
                co_return AttemptError{AttemptError::Kind::kProtocol,
                                       0,
                                       "an upstream stream event exceeded the size limit",
                                       "",
                                       {}};
            }
            for (auto& event : events) {
                if (event.data == "[DONE]") {
                    done = true;
                    break;
                }
                boost::system::error_code ec;
                auto v = json::parse(event.data, ec);
                if (ec || !v.is_object()) {
                    co_return AttemptError{AttemptError::Kind::kProtocol,
                                           0,
                                           "the upstream sent a malformed stream event",
                                           event.data.substr(0, kMaxErrorBody),
                                           {}};
                }
                auto& obj = v.as_object();
                if (auto err = obj.if_contains("error"); err && err->is_object()) {
                    AttemptError e{AttemptError::Kind::kStream,
                                   502,
                                   "",
                                   event.data.substr(0, kMaxErrorBody),
                                   {}};
                    const auto& eo = err->as_object();
                    if (auto m = eo.if_contains("message"); m && m->is_string())
                        e.message = std::string(m->as_string()).substr(0, kMaxMessage);
                    if (auto c = eo.if_contains("code"); c && c->is_int64())
                        e.http_status = static_cast<int>(c->as_int64());
                    if (e.message.empty()) e.message = "the upstream reported an error mid-stream";
                    co_return e;
                }
                if (!co_await sink.OnChunk(std::move(obj))) {
                    co_return AttemptError{AttemptError::Kind::kCancelled, 0, "cancelled", "", {}};
                }
            }
            events.clear();
        }
        co_return true;
    }

  private:
    asio::awaitable<Result<std::unique_ptr<http::ClientResponse>, AttemptError>> Send(
        const Call& call, bool stream) {
        http::ClientRequest req;
        req.url = base_url_ + "/chat/completions";
        req.body = BuildUpstreamBody(call.request, call.model.upstream_model, stream);
        req.headers.emplace_back("Content-Type", "application/json");
        req.headers.emplace_back("Accept", stream ? "text/event-stream" : "application/json");
        if (!api_key_.empty()) req.headers.emplace_back("Authorization", "Bearer " + api_key_);
        for (const auto& [k, v] : config_.headers) req.headers.emplace_back(k, v);
        auto response = co_await http::Send(std::move(req), timeouts_, call.cancel);
        if (!response) co_return FromClientError(response.error());
        co_return std::move(response.value());
    }

    static AttemptError HttpError(const http::ClientResponse& response, std::string body) {
        AttemptError e;
        e.kind = AttemptError::Kind::kHttp;
        e.http_status = response.status();
        e.message = UpstreamMessage(body, response.status());
        e.raw = std::move(body);
        if (auto ra = response.header("retry-after"); !ra.empty()) {
            const long seconds = std::strtol(std::string(ra).c_str(), nullptr, 10);
            if (seconds > 0) e.retry_after_seconds = static_cast<int>(std::min(seconds, 3600L));
        }
        return e;
    }

    config::ProviderConfig config_;
    std::string base_url_;
    std::string api_key_;
    http::ClientTimeouts timeouts_;
};

}  // namespace

Result<std::unique_ptr<Provider>> Create(const config::ProviderConfig& config) {
    return std::unique_ptr<Provider>(new OpenAiProvider(config));
}

}  // namespace beacon::providers::openai_compatible
