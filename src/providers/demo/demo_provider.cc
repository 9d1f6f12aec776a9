#include "providers/demo/demo_provider.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <ctime>

namespace beacon::providers::demo {
namespace asio = boost::asio;
namespace json = boost::json;
namespace {

// Characters per token, roughly, for the demo's own token counts.
constexpr size_t kCharsPerToken = 4;

void CollectText(const json::value& content, std::string& out) {
    if (content.is_string()) {
        out.append(content.as_string());
    } else if (content.is_array()) {
        for (const auto& part : content.as_array()) {
            if (!part.is_object()) continue;
            if (auto text = part.as_object().if_contains("text"); text && text->is_string()) {
                out.append(text->as_string());
            }
        }
    }
}

json::object Usage(int64_t prompt, int64_t completion) {
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion}};
}

}  // namespace

DemoAnswer Answer(const api::ChatRequest& request) {
    std::string all_text;
    std::string last_user;
    if (auto messages = request.body.if_contains("messages"); messages && messages->is_array()) {
        for (const auto& m : messages->as_array()) {
            const auto& obj = m.as_object();
            std::string text;
            if (auto c = obj.if_contains("content")) CollectText(*c, text);
            all_text += text;
            if (auto role = obj.if_contains("role"); role && role->as_string() == "user") {
                last_user = std::move(text);
            }
        }
    } else if (auto prompt = request.body.if_contains("prompt"); prompt && prompt->is_string()) {
        last_user = std::string(prompt->as_string());
        all_text = last_user;
    }
    if (last_user.size() > 200) last_user = last_user.substr(0, 200) + "...";
    std::string text = "Hello! This is Beacon's offline demo model. You said: \"" + last_user +
                       "\". Configure a provider in beacon.toml to reach a real model.";
    DemoAnswer a;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find(' ', start + 1);
        if (end == std::string::npos) end = text.size();
        a.pieces.push_back(text.substr(start, end - start));
        start = end;
    }
    a.finish_reason = "stop";
    int64_t limit = 0;
    for (const char* field : {"max_completion_tokens", "max_tokens"}) {
        if (auto v = request.body.if_contains(field); v && v->is_number()) {
            // A valid limit may exceed int64 (1e30): that is no limit, not an exception.
            boost::system::error_code ec;
            limit = v->to_number<int64_t>(ec);
            if (ec) limit = 0;
            break;
        }
    }
    if (limit > 0 && static_cast<int64_t>(a.pieces.size()) > limit) {
        a.pieces.resize(static_cast<size_t>(limit));
        a.finish_reason = "length";
    }
    a.prompt_tokens =
        static_cast<int64_t>((all_text.size() + kCharsPerToken - 1) / kCharsPerToken) + 1;
    return a;
}

DemoProvider::DemoProvider(const config::ProviderConfig& config)
    : name_(config.name),
      display_name_(config.display_name),
      chunk_delay_ms_(config.chunk_delay_ms) {}

asio::awaitable<Result<json::object, AttemptError>> DemoProvider::Complete(const Call& call) {
    DemoAnswer a = Answer(call.request);
    std::string text;
    for (const auto& p : a.pieces) text += p;
    const auto completion = static_cast<int64_t>(a.pieces.size());
    json::object message{{"role", "assistant"}, {"content", text}};
    json::object choice{
        {"index", 0}, {"message", std::move(message)}, {"finish_reason", a.finish_reason}};
    json::object out{{"id", "demo-" + std::to_string(std::time(nullptr))},
                     {"object", "chat.completion"},
                     {"created", static_cast<int64_t>(std::time(nullptr))},
                     {"model", call.model.upstream_model},
                     {"choices", json::array{std::move(choice)}},
                     {"usage", Usage(a.prompt_tokens, completion)}};
    co_return out;
}

asio::awaitable<Result<bool, AttemptError>> DemoProvider::Stream(const Call& call,
                                                                 ChunkSink& sink) {
    DemoAnswer a = Answer(call.request);
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    call.cancel.OnCancel([&timer] { timer.cancel(); });
    const auto created = static_cast<int64_t>(std::time(nullptr));
    auto chunk = [&](json::object delta, json::value finish) {
        json::object choice{
            {"index", 0}, {"delta", std::move(delta)}, {"finish_reason", std::move(finish)}};
        return json::object{{"id", "demo"},
                            {"object", "chat.completion.chunk"},
                            {"created", created},
                            {"model", call.model.upstream_model},
                            {"choices", json::array{std::move(choice)}}};
    };
    for (size_t i = 0; i < a.pieces.size(); ++i) {
        if (chunk_delay_ms_ > 0) {
            timer.expires_after(std::chrono::milliseconds(chunk_delay_ms_));
            co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        if (call.cancel.cancelled()) {
            call.cancel.Clear();
            co_return AttemptError{AttemptError::Kind::kCancelled, 0, "cancelled", "", {}};
        }
        json::object delta{{"content", a.pieces[i]}};
        if (i == 0) delta["role"] = "assistant";
        json::value finish = nullptr;
        if (i + 1 == a.pieces.size()) finish = json::string(a.finish_reason);
        auto c = chunk(std::move(delta), std::move(finish));
        if (!co_await sink.OnChunk(std::move(c))) {
            call.cancel.Clear();
            co_return AttemptError{AttemptError::Kind::kCancelled, 0, "cancelled", "", {}};
        }
    }
    call.cancel.Clear();
    json::object last{{"id", "demo"},
                      {"object", "chat.completion.chunk"},
                      {"created", created},
                      {"model", call.model.upstream_model},
                      {"choices", json::array{}},
                      {"usage", Usage(a.prompt_tokens, static_cast<int64_t>(a.pieces.size()))}};
    co_await sink.OnChunk(std::move(last));
    co_return true;
}

}  // namespace beacon::providers::demo
