#include "broadcast/destinations/langfuse/langfuse_destination.h"

#include <boost/json.hpp>
#include <cmath>
#include <cstdlib>
#include <unordered_map>
#include <unordered_set>

#include "base/crypto.h"
#include "base/gzip.h"
#include "broadcast/destinations/langfuse/mapping.h"
#include "http/client.h"

namespace beacon::broadcast::langfuse {
namespace asio = boost::asio;
namespace json = boost::json;
namespace {

constexpr size_t kMaxErrorBody = 4096;

std::optional<std::chrono::milliseconds> RetryAfter(const http::ClientResponse& r) {
    auto v = r.header("retry-after");
    if (v.empty()) return std::nullopt;
    char* end = nullptr;
    std::string s(v);
    double seconds = std::strtod(s.c_str(), &end);
    // HTTP dates and nonsense fall back to our own backoff; a huge value is capped so that one
    // answer cannot park a destination for hours.
    if (end == s.c_str() || !std::isfinite(seconds) || seconds < 0) return std::nullopt;
    return std::chrono::milliseconds(static_cast<int64_t>(std::min(seconds, 300.0) * 1000));
}

// What a whole-request status means for the batch.
ExportOutcome FromStatus(int status, std::string body,
                         std::optional<std::chrono::milliseconds> after) {
    ExportOutcome o;
    o.http_status = status;
    if (status >= 200 && status < 300) return o;
    o.reason = "HTTP " + std::to_string(status);
    if (!body.empty()) o.reason += ": " + body.substr(0, 300);
    if (status == 401 || status == 403) {
        o.kind = ExportOutcome::Kind::kRetry;
        o.unhealthy = true;
        o.reason = status == 401 ? "Langfuse rejected the keys (401): check the public and secret "
                                   "key and that the base URL is the keys' region"
                                 : "Langfuse refused ingestion (403): organisation key or "
                                   "ingestion suspended";
    } else if (status == 408 || status == 429 || status >= 500) {
        o.kind = ExportOutcome::Kind::kRetry;
        o.retry_after = after;
    } else {
        o.kind = ExportOutcome::Kind::kDrop;
    }
    return o;
}

class LangfuseDestination final : public Destination {
  public:
    explicit LangfuseDestination(config::DestinationConfig config) : config_(std::move(config)) {
        std::string base =
            config_.base_url.empty() ? std::string(kDefaultBaseUrl) : config_.base_url;
        while (!base.empty() && base.back() == '/') base.pop_back();
        base_url_ = base;
        std::string secret = config_.secret_key;
        if (secret.empty() && !config_.secret_key_env.empty()) {
            if (const char* v = std::getenv(config_.secret_key_env.c_str())) secret = v;
        }
        authorization_ = "Basic " + base::Base64Encode(config_.public_key + ":" + secret);
        timeouts_.connect = std::chrono::milliseconds(std::min(config_.timeout_ms, 5000));
        timeouts_.first_byte = std::chrono::milliseconds(config_.timeout_ms);
        timeouts_.total = std::chrono::milliseconds(config_.timeout_ms);
    }

    const config::DestinationConfig& config() const override { return config_; }

    asio::awaitable<ExportOutcome> Export(const std::vector<trace::RecordPtr>& batch,
                                          base::Canceller& cancel) override {
        if (config_.transport == "ingestion") co_return co_await ExportIngestion(batch, cancel);
        co_return co_await ExportOtlp(batch, cancel);
    }

  private:
    http::ClientRequest Request(std::string_view path) const {
        http::ClientRequest req;
        req.url = base_url_ + std::string(path);
        req.headers = {{"Authorization", authorization_},
                       {"Content-Type", "application/json"},
                       {"x-langfuse-sdk-name", "beacon"},
                       {"x-langfuse-sdk-version", "0.1.0"},
                       {"x-langfuse-public-key", config_.public_key}};
        return req;
    }

    static ExportOutcome NetworkError(const http::ClientError& e) {
        ExportOutcome o;
        o.kind = ExportOutcome::Kind::kRetry;
        o.reason = std::string(http::ClientErrorKindName(e.kind)) + ": " + e.message;
        return o;
    }

    asio::awaitable<ExportOutcome> ExportOtlp(const std::vector<trace::RecordPtr>& batch,
                                              base::Canceller& cancel) {
        http::ClientRequest req = Request("/api/public/otel/v1/traces");
        req.headers.emplace_back("x-langfuse-ingestion-version", "4");
        std::string body = EncodeOtlp(batch, config_.privacy_mode);
        if (config_.gzip) {
            req.body = base::Gzip(body);
            req.headers.emplace_back("Content-Encoding", "gzip");
        } else {
            req.body = std::move(body);
        }
        auto sent = co_await http::Send(std::move(req), timeouts_, cancel);
        if (!sent) co_return NetworkError(sent.error());
        auto& response = *sent.value();
        auto text = co_await response.ReadAll(kMaxErrorBody);
        if (!text) co_return NetworkError(text.error());
        co_return FromStatus(response.status(), std::move(text.value()), RetryAfter(response));
    }

    asio::awaitable<ExportOutcome> ExportIngestion(const std::vector<trace::RecordPtr>& batch,
                                                   base::Canceller& cancel) {
        http::ClientRequest req = Request("/api/public/ingestion");
        IngestionBatch encoded = EncodeIngestion(
            batch, config_.privacy_mode,
            [this](const std::string& id) { return accepted_events_.count(id) > 0; });
        req.body = std::move(encoded.body);
        auto sent = co_await http::Send(std::move(req), timeouts_, cancel);
        if (!sent) co_return NetworkError(sent.error());
        auto& response = *sent.value();
        auto text = co_await response.ReadAll(4 * 1024 * 1024);
        if (!text) co_return NetworkError(text.error());
        if (response.status() != 207) {
            co_return FromStatus(response.status(), std::move(text.value()), RetryAfter(response));
        }
        ExportOutcome outcome = FromMultiStatus(text.value(), encoded, batch.size());
        RememberAccepted(outcome, encoded, batch, text.value());
        co_return outcome;
    }

    // Events Langfuse accepted for records that will be resent are not offered again; the
    // memory is released when a record is settled (delivered or dropped).
    void RememberAccepted(const ExportOutcome& outcome, const IngestionBatch& encoded,
                          const std::vector<trace::RecordPtr>& batch, const std::string& text) {
        std::vector<bool> resend(batch.size(), false);
        for (size_t i : outcome.retry) {
            if (i < resend.size()) resend[i] = true;
        }
        std::unordered_set<std::string> failed;
        boost::system::error_code ec;
        auto v = json::parse(text, ec);
        if (!ec && v.is_object()) {
            if (auto errors = v.as_object().if_contains("errors"); errors && errors->is_array()) {
                for (const auto& e : errors->as_array()) {
                    if (auto id = e.is_object() ? e.as_object().if_contains("id") : nullptr;
                        id && id->is_string()) {
                        failed.insert(std::string(id->as_string()));
                    }
                }
            }
        }
        // Records that end without another 207 (given up, dropped at shutdown) leave entries
        // behind; the bound keeps that harmless.
        if (accepted_events_.size() > 100000) accepted_events_.clear();
        for (size_t i = 0; i < batch.size(); ++i) {
            if (!resend[i]) {
                for (const auto& id : EventIds(batch[i]->generation_id)) accepted_events_.erase(id);
            }
        }
        for (const auto& [id, owner] : encoded.event_owner) {
            if (resend[owner] && !failed.count(id)) accepted_events_.insert(id);
        }
    }

    // 207: a record is delivered when all its events were, resent when any event got a 5xx,
    // and dropped when any got a 4xx (and none a 5xx).
    static ExportOutcome FromMultiStatus(const std::string& text, const IngestionBatch& encoded,
                                         size_t records) {
        ExportOutcome o;
        o.http_status = 207;
        boost::system::error_code ec;
        auto v = json::parse(text, ec);
        if (ec || !v.is_object()) {
            o.kind = ExportOutcome::Kind::kRetry;
            o.reason = "unreadable 207 answer from Langfuse";
            return o;
        }
        std::unordered_map<std::string, size_t> owner;
        for (const auto& [id, index] : encoded.event_owner) owner[id] = index;
        std::vector<int> state(records, 0);  // 0 ok, 1 dropped, 2 retry
        if (auto errors = v.as_object().if_contains("errors"); errors && errors->is_array()) {
            for (const auto& e : errors->as_array()) {
                if (!e.is_object()) continue;
                const auto& eo = e.as_object();
                auto id = eo.if_contains("id");
                auto status = eo.if_contains("status");
                if (!id || !id->is_string()) continue;
                auto it = owner.find(std::string(id->as_string()));
                if (it == owner.end()) continue;
                const int64_t s = status && status->is_int64() ? status->as_int64() : 500;
                const int verdict = s >= 500 ? 2 : 1;
                state[it->second] = std::max(state[it->second], verdict);
                if (o.reason.empty()) {
                    o.reason = "Langfuse refused an event (" + std::to_string(s) + ")";
                    if (auto m = eo.if_contains("message"); m && m->is_string()) {
                        o.reason += ": " + std::string(m->as_string()).substr(0, 200);
                    }
                }
            }
        }
        for (size_t i = 0; i < records; ++i) {
            if (state[i] == 1) ++o.dropped;
            if (state[i] == 2) o.retry.push_back(i);
        }
        if (o.dropped || !o.retry.empty()) o.kind = ExportOutcome::Kind::kPartial;
        return o;
    }

    config::DestinationConfig config_;
    std::string base_url_;
    std::string authorization_;
    http::ClientTimeouts timeouts_;
    std::unordered_set<std::string> accepted_events_;  // Broadcast thread only
};

}  // namespace

Result<std::unique_ptr<Destination>> Create(const config::DestinationConfig& config) {
    if (config.public_key.empty()) {
        return Error{"broadcast.destinations." + config.name + ".public_key: required"};
    }
    if (config.secret_key.empty() &&
        (config.secret_key_env.empty() || !std::getenv(config.secret_key_env.c_str()))) {
        return Error{"broadcast.destinations." + config.name +
                     ".secret_key: required (or secret_key_env naming a set variable)"};
    }
    if (config.transport != "otlp" && config.transport != "ingestion") {
        return Error{"broadcast.destinations." + config.name +
                     ".transport: expected \"otlp\" or \"ingestion\""};
    }
    return std::unique_ptr<Destination>(new LangfuseDestination(config));
}

}  // namespace beacon::broadcast::langfuse
