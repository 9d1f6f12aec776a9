// POST /api/v1/chat/completions: one ChatCall per request.
//
// A whole answer runs as one coroutine (RunWhole, the attempts) with a DelayedWatch that aborts
// the upstream I/O through the Canceller if the client closes its connection.
// A stream runs as two or three coroutines joined with `||` on the connection's thread:
//   - the attempts (RunStream), which ignore cancellation and always finish;
//   - Watch, which notices the client closing its connection and aborts the upstream I/O
//     through the Canceller (so the attempts finish promptly);
//   - KeepAlive (when configured), which writes ": OPENROUTER PROCESSING" comments until the
//     first chunk arrives.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <ctime>
#include <functional>
#include <memory>

#include "api/error.h"
#include "api/finish_reason.h"
#include "api/sse.h"
#include "base/ids.h"
#include "base/json_arena.h"
#include "base/json_text.h"
#include "gateway/gateway.h"

namespace beacon::gateway {
namespace asio = boost::asio;
namespace json = boost::json;
using namespace boost::asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kJson = "application/json";
// A whole (non-streamed) answer watches for the client leaving only after this long.
constexpr std::chrono::milliseconds kWholeWatchDelay{250};

// For a whole answer: once it has taken kWholeWatchDelay, `on_gone` runs if the client closes
// its connection, until this goes out of scope. Most answers come sooner, so most requests pay
// for a timer only. Callbacks rather than a second coroutine joined with `||`: callgrind counted
// ~12k instructions per request for that join (two co_spawns, cancellation slots).
class DelayedWatch {
  public:
    DelayedWatch(http::Exchange& ex, std::function<void()> on_gone)
        : ex_(ex), timer_(ex.executor(), kWholeWatchDelay), armed_(std::make_shared<bool>(true)) {
        // The handler may run after this is gone (a cancelled or already queued wait): it acts
        // only while `armed`, and then `ex` is still alive.
        timer_.async_wait([&ex, armed = armed_, on_gone = std::move(on_gone)](
                              const boost::system::error_code& ec) mutable {
            if (ec || !*armed) return;
            ex.WatchClientGone(std::move(on_gone));
        });
    }
    ~DelayedWatch() {
        *armed_ = false;
        timer_.cancel();
        ex_.StopWatching();
    }
    DelayedWatch(const DelayedWatch&) = delete;
    DelayedWatch& operator=(const DelayedWatch&) = delete;

  private:
    http::Exchange& ex_;
    asio::steady_timer timer_;
    std::shared_ptr<bool> armed_;
};

// A count from an upstream: untrusted, so kept within [0, 2^50] (no overflow when added).
int64_t IntField(const json::object& obj, std::string_view key) {
    if (auto v = obj.if_contains(key); v && v->is_number()) {
        boost::system::error_code ec;
        auto n = v->to_number<int64_t>(ec);
        if (!ec) return std::clamp<int64_t>(n, 0, int64_t{1} << 50);
    }
    return 0;
}

providers::Usage ParseUsage(const json::object& u) {
    providers::Usage usage;
    usage.known = true;
    usage.prompt_tokens = IntField(u, "prompt_tokens");
    usage.completion_tokens = IntField(u, "completion_tokens");
    usage.total_tokens = IntField(u, "total_tokens");
    if (usage.total_tokens == 0) usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    if (auto d = u.if_contains("prompt_tokens_details"); d && d->is_object()) {
        usage.cached_tokens = IntField(d->as_object(), "cached_tokens");
    }
    if (auto d = u.if_contains("completion_tokens_details"); d && d->is_object()) {
        usage.reasoning_tokens = IntField(d->as_object(), "reasoning_tokens");
    }
    return usage;
}

// Appends `obj` (or {} when null) as JSON with the value of `key` replaced by `value` (JSON
// text): in its place, or added last. What `obj[key] = value` and then serialising wrote.
void AppendObjectWith(std::string& out, const json::object* obj, std::string_view key,
                      std::string_view value) {
    out.push_back('{');
    bool first = true;
    bool written = false;
    auto member = [&](std::string_view k) {
        if (!first) out.push_back(',');
        first = false;
        base::AppendJsonString(out, k);
        out.push_back(':');
    };
    if (obj) {
        for (const auto& kv : *obj) {
            member(kv.key());
            if (kv.key() == key) {
                out += value;
                written = true;
            } else {
                base::AppendJsonValue(out, kv.value());
            }
        }
    }
    if (!written) {
        member(key);
        out += value;
    }
    out.push_back('}');
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct ToolCall {
    std::string id;
    std::string type = "function";
    std::string name;
    std::string arguments;
};

}  // namespace

class ChatCall final : public providers::ChunkSink {
  public:
    ChatCall(Gateway& gateway, http::Exchange& exchange, const store::ApiKey& key)
        : gw_(gateway),
          ex_(exchange),
          key_(key),
          keepalive_timer_(exchange.executor()),
          start_(Clock::now()) {
        start_unix_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        created_ = start_unix_ns_ / 1000000000;
        gen_id_ = base::NewGenerationId(created_);
    }

    asio::awaitable<void> Run() {
        co_await RunInner();
        Record();
    }

    // The model that answered, or the one asked for.
    const std::string& model_label() const { return model_label_; }

  private:
    asio::awaitable<void> RunInner() {
        auto parsed = api::ParseChatRequest(ex_.body(), arena_.storage());
        if (!parsed) {
            rejected_ = true;
            co_await Fail(api::ApiError::BadRequest(parsed.error().message));
            co_return;
        }
        req_ = std::move(parsed.value());
        if (req_.session_id.empty()) {
            std::string_view header = ex_.header("x-session-id");
            if (auto bad = api::ValidateSessionId(header)) {
                rejected_ = true;
                co_await Fail(api::ApiError::BadRequest(*bad));
                co_return;
            }
            req_.session_id = std::string(header);
        }
        if (auto s = ResolveCandidates(); !s) {
            rejected_ = true;
            co_await Fail(api::ApiError::NotFound(s.error().message));
            co_return;
        }
        if (req_.stream) {
            if (gw_.config_.server.sse_keepalive_ms > 0) {
                co_await (RunStream() || Watch() || KeepAlive());
            } else {
                co_await (RunStream() || Watch());
            }
        } else {
            co_await RunWhole();
        }
    }

  public:
    // ChunkSink: one upstream chunk, rewritten and sent to the client.
    asio::awaitable<bool> OnChunk(json::object chunk) override {
        const auto now = Clock::now();
        if (!first_byte_) first_byte_ = now;
        if (auto u = chunk.if_contains("usage"); u && u->is_object()) {
            usage_ = ParseUsage(u->as_object());
            upstream_usage_ = u->as_object();
        }
        chunk.erase("usage");
        auto* choices = chunk.if_contains("choices");
        if (!choices || !choices->is_array() || choices->as_array().empty()) {
            co_return !ex_.client_gone();  // usage-only chunk: ours comes at the end
        }
        bool has_token = false;
        for (auto& c : choices->as_array()) {
            if (!c.is_object()) continue;
            auto& choice = c.as_object();
            NormalizeFinish(choice);
            if (auto d = choice.if_contains("delta"); d && d->is_object()) {
                has_token |= Accumulate(d->as_object());
            }
        }
        if (has_token && !first_token_) first_token_ = now;
        Stamp(chunk, "chat.completion.chunk");
        if (!co_await EnsureStreamStarted()) co_return false;
        data_sent_ = true;
        const bool written = co_await ex_.WriteChunk(api::SseData(base::JsonText(chunk)));
        last_write_ = Clock::now();
        co_return written;
    }

  private:
    int64_t UnixNs(Clock::time_point t) const {
        return start_unix_ns_ +
               std::chrono::duration_cast<std::chrono::nanoseconds>(t - start_).count();
    }

    Status ResolveCandidates() {
        std::vector<std::string> names;
        if (!req_.model.empty()) {
            names.push_back(req_.model);
        } else if (req_.models.empty()) {
            names.push_back(gw_.config_.server.default_model.empty()
                                ? gw_.catalog_.models().front().id
                                : gw_.config_.server.default_model);
        }
        for (const auto& m : req_.models) names.push_back(m);
        std::string unknown;
        for (const auto& n : names) {
            const providers::ModelEntry* entry = gw_.catalog_.Find(n);
            if (!entry) {
                if (unknown.empty()) unknown = n;
                continue;
            }
            bool dup = false;
            for (auto* c : candidates_) dup |= (c == entry);
            if (!dup) candidates_.push_back(entry);
        }
        if (candidates_.empty()) {
            return Error{"Model " + unknown +
                         " not found: it is not in this gateway's catalog "
                         "(GET /api/v1/models lists them)"};
        }
        return Status::Ok();
    }

    providers::Provider& ProviderFor(const providers::ModelEntry& m) const {
        return *gw_.providers_.at(m.provider);
    }

    // Writes id, model, provider, object and created on a completion or chunk.
    void Stamp(json::object& obj, std::string_view object_type) {
        obj["id"] = gen_id_;
        obj["provider"] = ProviderFor(*model_).display_name();
        obj["model"] = model_->id;
        obj["object"] = object_type;
        obj["created"] = created_;
    }

    void NormalizeFinish(json::object& choice) {
        auto* fr = choice.if_contains("finish_reason");
        if (!fr || !fr->is_string()) {
            choice["native_finish_reason"] = nullptr;
            return;
        }
        native_finish_reason_ = std::string(fr->as_string());
        finish_reason_ = std::string(api::NormalizeFinishReason(native_finish_reason_));
        choice["finish_reason"] = finish_reason_;
        choice["native_finish_reason"] = native_finish_reason_;
    }

    // How a delta's tool calls are numbered: by their stream `index`, or, in a whole answer's
    // message (where they carry none), each as the next call.
    enum class ToolIndex { kStream, kNext };

    // Adds a stream delta (or a whole answer's message) to the output kept for the record; true
    // if it carried a token.
    bool Accumulate(const json::object& delta, ToolIndex numbering = ToolIndex::kStream) {
        bool token = false;
        if (auto c = delta.if_contains("content"); c && c->is_string() && !c->as_string().empty()) {
            content_.append(c->as_string());
            token = true;
        }
        if (auto r = delta.if_contains("reasoning");
            r && r->is_string() && !r->as_string().empty()) {
            reasoning_.append(r->as_string());
            token = true;
        }
        if (auto calls = delta.if_contains("tool_calls"); calls && calls->is_array()) {
            for (const auto& v : calls->as_array()) {
                if (!v.is_object()) continue;
                const auto& call = v.as_object();
                const size_t index =
                    numbering == ToolIndex::kNext
                        ? tool_calls_.size()
                        : static_cast<size_t>(std::max<int64_t>(0, IntField(call, "index")));
                if (index > 1024) continue;
                if (tool_calls_.size() <= index) tool_calls_.resize(index + 1);
                auto& tc = tool_calls_[index];
                if (auto id = call.if_contains("id"); id && id->is_string())
                    tc.id = id->as_string();
                if (auto t = call.if_contains("type"); t && t->is_string())
                    tc.type = t->as_string();
                if (auto f = call.if_contains("function"); f && f->is_object()) {
                    const auto& fn = f->as_object();
                    if (auto n = fn.if_contains("name"); n && n->is_string())
                        tc.name += n->as_string();
                    if (auto a = fn.if_contains("arguments"); a && a->is_string()) {
                        tc.arguments += a->as_string();
                    }
                }
                token = true;
            }
        }
        return token;
    }

    // Appends the usage we answer with: our counts and cost, with the upstream's token details
    // (`upstream`, when it sent usage) kept and our cached and reasoning counts written over
    // theirs. Written as text: the objects it was built as first were ~4% of the request thread.
    void AppendUsage(std::string& out, const json::object* upstream) const {
        const auto cost = providers::ComputeCost(*model_, usage_);
        out.reserve(out.size() + 512);  // ~330 bytes with OpenAI's details
        auto details = [&](std::string_view name, std::string_view key, int64_t n) {
            const json::value* d = upstream ? upstream->if_contains(name) : nullptr;
            std::string count;
            base::AppendJsonInt(count, n);
            AppendObjectWith(out, d && d->is_object() ? &d->as_object() : nullptr, key, count);
        };
        out += R"({"prompt_tokens":)";
        base::AppendJsonInt(out, usage_.prompt_tokens);
        out += R"(,"completion_tokens":)";
        base::AppendJsonInt(out, usage_.completion_tokens);
        out += R"(,"total_tokens":)";
        base::AppendJsonInt(out, usage_.total_tokens);
        out += R"(,"prompt_tokens_details":)";
        details("prompt_tokens_details", "cached_tokens", usage_.cached_tokens);
        out += R"(,"completion_tokens_details":)";
        details("completion_tokens_details", "reasoning_tokens", usage_.reasoning_tokens);
        out += R"(,"cost":)";
        base::AppendJsonNumber(out, cost.total);
        out += R"(,"is_byok":false,"cost_details":{"upstream_inference_cost":null,)";
        out += R"("upstream_inference_prompt_cost":)";
        base::AppendJsonNumber(out, cost.prompt);
        out += R"(,"upstream_inference_completions_cost":)";
        base::AppendJsonNumber(out, cost.completion);
        out += "}}";
    }

    void NoteAttempt(int status, const std::string& error, Clock::time_point started) {
        attempts_.push_back({model_->id, ProviderFor(*model_).display_name(), status, error,
                             Ms(Clock::now() - started)});
    }

    http::Headers GenerationHeaders() const { return {{"X-Generation-Id", gen_id_}}; }

    // --- non-streaming -----------------------------------------------------------------

    asio::awaitable<void> RunWhole() {
        auto on_gone = [this] { ClientGone(); };
        DelayedWatch watch(ex_, on_gone);
        for (size_t i = 0; i < candidates_.size(); ++i) {
            model_ = candidates_[i];
            auto& provider = ProviderFor(*model_);
            const auto t0 = Clock::now();
            providers::Call call{req_, *model_, cancel_, arena_.storage()};
            auto result = co_await provider.Complete(call);
            if (result) {
                if (!first_byte_) first_byte_ = Clock::now();
                NoteAttempt(200, "", t0);
                co_await RespondWhole(std::move(result.value()));
                co_return;
            }
            const auto& err = result.error();
            NoteAttempt(err.http_status, err.message, t0);
            if (err.kind == providers::AttemptError::Kind::kCancelled || cancel_.cancelled()) {
                cancelled_ = true;
                co_return;
            }
            if (err.Retryable() && i + 1 < candidates_.size()) {
                spdlog::warn("{}: {} failed ({}); falling back to {}", gen_id_, model_->id,
                             err.message, candidates_[i + 1]->id);
                continue;
            }
            co_await Fail(MapError(err));
            co_return;
        }
    }

    asio::awaitable<void> RespondWhole(json::object completion) {
        // Made now: the upstream's usage is read in place, and the edits below may move it.
        const json::value* u = completion.if_contains("usage");
        const json::object* upstream_usage = u && u->is_object() ? &u->as_object() : nullptr;
        if (upstream_usage) usage_ = ParseUsage(*upstream_usage);
        std::string usage;
        AppendUsage(usage, upstream_usage);
        if (auto* choices = completion.if_contains("choices"); choices && choices->is_array()) {
            for (auto& c : choices->as_array()) {
                if (!c.is_object()) continue;
                auto& choice = c.as_object();
                NormalizeFinish(choice);
                if (auto m = choice.if_contains("message"); m && m->is_object()) {
                    Accumulate(m->as_object(), ToolIndex::kNext);
                }
            }
        }
        Stamp(completion, "chat.completion");
        // Strict clients (@openrouter/sdk) require the key, null or not.
        if (!completion.contains("system_fingerprint")) completion["system_fingerprint"] = nullptr;
        std::string text;
        text.reserve(1024 + usage.size());
        AppendObjectWith(text, &completion, "usage", usage);
        co_await ex_.Respond(200, kJson, std::move(text), GenerationHeaders());
    }

    // --- streaming -----------------------------------------------------------------------

    asio::awaitable<void> RunStream() {
        co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
        for (size_t i = 0; i < candidates_.size(); ++i) {
            model_ = candidates_[i];
            auto& provider = ProviderFor(*model_);
            const auto t0 = Clock::now();
            providers::Call call{req_, *model_, cancel_};
            auto result = co_await provider.Stream(call, *this);
            if (result) {
                NoteAttempt(200, "", t0);
                StopKeepAlive();
                co_await FinishStream();
                break;
            }
            const auto& err = result.error();
            NoteAttempt(err.http_status, err.message, t0);
            if (err.kind == providers::AttemptError::Kind::kCancelled || cancel_.cancelled() ||
                ex_.client_gone()) {
                cancelled_ = true;
                break;
            }
            if (!data_sent_ && err.Retryable() && i + 1 < candidates_.size()) {
                spdlog::warn("{}: {} failed ({}); falling back to {}", gen_id_, model_->id,
                             err.message, candidates_[i + 1]->id);
                continue;
            }
            StopKeepAlive();
            const api::ApiError error = MapError(err);
            if (head_sent_) {
                co_await WriteStreamError(error);
            } else {
                co_await Fail(error);
            }
            break;
        }
        StopKeepAlive();
    }

    // Before the last writes, so that no comment can follow them.
    void StopKeepAlive() {
        finished_ = true;
        keepalive_timer_.cancel();
    }

    asio::awaitable<bool> EnsureStreamStarted() {
        if (head_sent_) co_return !ex_.client_gone();
        head_sent_ = true;
        co_return co_await ex_.StartStream(200, "text/event-stream", GenerationHeaders());
    }

    asio::awaitable<void> FinishStream() {
        if (!co_await EnsureStreamStarted()) co_return;
        json::object last;
        Stamp(last, "chat.completion.chunk");
        last["choices"] = json::array{};
        std::string usage;
        AppendUsage(usage, &upstream_usage_);
        std::string text;
        AppendObjectWith(text, &last, "usage", usage);
        if (!co_await ex_.WriteChunk(api::SseData(text))) co_return;
        if (!co_await ex_.WriteChunk(std::string(api::kSseDone))) co_return;
        co_await ex_.EndStream();
    }

    asio::awaitable<void> WriteStreamError(const api::ApiError& error) {
        status_ = error.status;
        error_ = error.message;
        error_type_ = ErrorType(error);
        finish_reason_ = "error";
        json::object chunk;
        Stamp(chunk, "chat.completion.chunk");
        chunk["error"] = api::ErrorObject(error);
        chunk["choices"] = json::array{json::object{{"index", 0},
                                                    {"delta", json::object{{"content", ""}}},
                                                    {"finish_reason", "error"},
                                                    {"native_finish_reason", nullptr}}};
        if (co_await ex_.WriteChunk(api::SseData(base::JsonText(chunk)))) co_await ex_.EndStream();
    }

    // Writes ": OPENROUTER PROCESSING" whenever nothing was written for an interval: while
    // waiting for the first chunk and during long gaps. It runs until the stream ends, because
    // `||` cancels the other arms (Watch among them) as soon as one arm completes.
    asio::awaitable<void> KeepAlive() {
        co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
        const auto interval = std::chrono::milliseconds(gw_.config_.server.sse_keepalive_ms);
        while (!finished_) {
            keepalive_timer_.expires_after(interval);
            co_await keepalive_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (finished_ || ex_.client_gone()) break;
            if (last_write_ && Clock::now() - *last_write_ < interval) continue;
            bool written = co_await EnsureStreamStarted();
            if (written) written = co_await ex_.WriteChunk(std::string(api::kSseKeepAlive));
            if (!written) {
                // The client is gone: stop the upstream now rather than at its next chunk.
                if (!finished_) {
                    cancelled_ = true;
                    cancel_.Cancel();
                }
                break;
            }
            last_write_ = Clock::now();
        }
    }

    // --- shared --------------------------------------------------------------------------

    // A stream's: cancels the upstream call when the client goes away.
    asio::awaitable<void> Watch() {
        const bool gone = co_await ex_.WaitClientGone();
        if (gone) ClientGone();
    }

    // The client closed its connection: abort the upstream I/O (the attempts then finish
    // promptly) and stop the keep-alive comments.
    void ClientGone() {
        cancelled_ = true;
        cancel_.Cancel();
        keepalive_timer_.cancel();
    }

    api::ApiError MapError(const providers::AttemptError& err) const {
        using K = providers::AttemptError::Kind;
        api::ApiError out;
        const std::string& provider = model_ ? ProviderFor(*model_).display_name() : std::string();
        out.metadata["provider_name"] = provider;
        out.metadata["raw"] = err.raw.empty() ? err.message : err.raw;
        switch (err.kind) {
            case K::kTimeout:
                out.status = 504;
                out.message = "The provider timed out: " + err.message;
                out.metadata["error_type"] = "timeout";
                break;
            case K::kHttp:
            case K::kStream:
                if (err.http_status == 429) {
                    out.status = 429;
                    out.metadata["error_type"] = "rate_limit_exceeded";
                } else if (err.http_status == 408) {
                    out.status = 504;
                    out.metadata["error_type"] = "timeout";
                } else if (err.http_status == 400 || err.http_status == 413 ||
                           err.http_status == 422) {
                    out.status = err.http_status;
                    out.metadata["error_type"] = "invalid_request";
                } else {
                    out.status = 502;
                    out.metadata["error_type"] = "provider_unavailable";
                }
                out.message = err.message.empty() ? "Provider returned error" : err.message;
                if (err.retry_after_seconds) out.metadata["retry_after"] = *err.retry_after_seconds;
                break;
            case K::kConnect:
                out.status = 502;
                out.message = "Cannot reach the provider: " + err.message;
                out.metadata["error_type"] = "provider_unavailable";
                break;
            case K::kProtocol:
            case K::kCancelled:
                out.status = 502;
                out.message = "Invalid response from the provider: " + err.message;
                out.metadata["error_type"] = "provider_unavailable";
                break;
        }
        return out;
    }

    asio::awaitable<void> Fail(const api::ApiError& error) {
        status_ = error.status;
        error_ = error.message;
        error_type_ = ErrorType(error);
        if (!finish_reason_.empty() || status_ >= 500) finish_reason_ = "error";
        http::Headers headers = GenerationHeaders();
        if (auto ra = error.metadata.if_contains("retry_after"); ra && ra->is_int64()) {
            headers.emplace_back("Retry-After", std::to_string(ra->as_int64()));
        }
        co_await ex_.Respond(error.status, kJson, api::ErrorBody(error), std::move(headers));
    }

    static std::string ErrorType(const api::ApiError& error) {
        if (auto t = error.metadata.if_contains("error_type"); t && t->is_string()) {
            return std::string(t->as_string());
        }
        switch (error.status) {
            case 400:
                return "invalid_request";
            case 404:
                return "not_found";
            default:
                return "error";
        }
    }

    // The request's messages as JSON text (taken: called once, at the end), written at parse.
    // A request refused after it parsed (unknown model, bad x-session-id) has them too. One that
    // failed validation keeps what can be read of it: its messages if the JSON parsed, else the
    // raw body as a string.
    std::string TakeInputJson() {
        constexpr size_t kRawLimit = 64 * 1024;
        if (!req_.messages_json.empty()) return std::move(req_.messages_json);
        if (!rejected_) {
            if (auto p = req_.body.if_contains("prompt")) return base::JsonText(*p);
            return {};
        }
        boost::system::error_code ec;
        auto v = json::parse(ex_.body(), ec);
        if (!ec && v.is_object()) {
            if (auto m = v.as_object().if_contains("messages")) return base::JsonText(*m);
        }
        std::string raw;
        base::AppendJsonString(raw, std::string_view(ex_.body()).substr(0, kRawLimit));
        return raw;
    }

    void Record() {
        const auto end = Clock::now();
        auto rec = std::make_shared<trace::TraceRecord>();
        rec->generation_id = gen_id_;
        rec->workspace_id = key_.workspace_id;
        rec->api_key_id = key_.id;
        rec->api_key_name = key_.name;
        rec->user = req_.user;
        rec->session_id = req_.session_id;
        rec->trace = std::move(req_.trace);
        if (model_) {
            rec->model = model_->id;
            rec->provider = ProviderFor(*model_).display_name();
            rec->cost = providers::ComputeCost(*model_, usage_);
        } else {
            rec->model = req_.model;
        }
        rec->model_parameters_json = trace::ModelParametersJson(req_.body, req_.stream);
        rec->streamed = req_.stream;
        rec->input_json = TakeInputJson();
        rec->output_text = std::move(content_);
        rec->reasoning = std::move(reasoning_);
        trace::CapContent(*rec);
        for (auto& tc : tool_calls_) {
            rec->tool_calls.push_back({std::move(tc.id), std::move(tc.type), std::move(tc.name),
                                       std::move(tc.arguments)});
        }
        rec->finish_reason = finish_reason_;
        rec->native_finish_reason = native_finish_reason_;
        rec->usage = usage_;
        rec->start_ns = start_unix_ns_;
        rec->end_ns = UnixNs(end);
        if (first_token_) rec->first_token_ns = UnixNs(*first_token_);
        if (cancelled_) {
            rec->outcome = trace::Outcome::kCancelled;
            rec->status = 499;
        } else if (rejected_) {
            rec->outcome = trace::Outcome::kRejected;
            rec->status = status_;
        } else if (!error_.empty()) {
            rec->outcome = trace::Outcome::kFailed;
            rec->status = status_;
        }
        rec->error_type = error_type_;
        rec->error = error_;
        rec->attempts = std::move(attempts_);
        spdlog::info(
            "chat completion id={} key={} model={} status={} stream={} outcome={} "
            "tokens={}+{} cost={:.8f} latency_ms={:.1f}",
            rec->generation_id, key_.name, rec->model, rec->status, rec->streamed,
            static_cast<int>(rec->outcome), usage_.prompt_tokens, usage_.completion_tokens,
            rec->cost.total, Ms(end - start_));
        {
            std::lock_guard lock(gw_.usage_mu_);
            auto& u = gw_.usage_by_key_[key_.id];
            u.cost += rec->cost.total;
            u.requests += 1;
        }
        gw_.generations_.Add(*rec);
        gw_.metrics_.ObserveChat(*rec);
        model_label_ = rec->model;
        if (gw_.sink_) gw_.sink_->Submit(std::move(rec));
    }

    Gateway& gw_;
    http::Exchange& ex_;
    const store::ApiKey& key_;
    asio::steady_timer keepalive_timer_;
    base::Canceller cancel_;

    // Holds the request's and the answer's DOMs: declared before them, gone after them.
    base::JsonArena arena_;
    api::ChatRequest req_{arena_.storage()};
    std::string gen_id_;
    int64_t created_ = 0;
    std::vector<const providers::ModelEntry*> candidates_;
    const providers::ModelEntry* model_ = nullptr;
    std::vector<trace::Attempt> attempts_;
    std::string model_label_;

    Clock::time_point start_;
    std::optional<Clock::time_point> first_byte_;
    std::optional<Clock::time_point> first_token_;
    std::optional<Clock::time_point> last_write_;

    bool head_sent_ = false;
    bool data_sent_ = false;
    bool finished_ = false;
    bool cancelled_ = false;
    int status_ = 200;
    std::string error_;
    std::string error_type_;
    bool rejected_ = false;
    int64_t start_unix_ns_ = 0;

    providers::Usage usage_;
    json::object upstream_usage_;
    std::string content_;
    std::string reasoning_;
    std::vector<ToolCall> tool_calls_;
    std::string finish_reason_;
    std::string native_finish_reason_;
};

asio::awaitable<void> Gateway::HandleChat(http::Exchange& exchange, const store::ApiKey& key,
                                          std::string& model) {
    ChatCall call(*this, exchange, key);
    co_await call.Run();
    model = call.model_label();
}

}  // namespace beacon::gateway
