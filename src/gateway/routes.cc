#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <chrono>

#include "api/error.h"
#include "base/iso_time.h"
#include "gateway/gateway.h"
#include "providers/registry.h"
#include "web/assets.h"

namespace beacon::gateway {
namespace asio = boost::asio;
namespace json = boost::json;
namespace {

constexpr std::string_view kJson = "application/json";

asio::awaitable<void> RespondError(http::Exchange& ex, const api::ApiError& error) {
    co_await ex.Respond(error.status, kJson, api::ErrorBody(error));
}

// "Bearer <key>" (the scheme is case-insensitive); empty when absent or malformed.
std::string_view BearerToken(std::string_view authorization) {
    constexpr std::string_view kScheme = "bearer ";
    if (authorization.size() <= kScheme.size()) return {};
    for (size_t i = 0; i < kScheme.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
    }
    auto token = authorization.substr(kScheme.size());
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    return token;
}

// Built outside coroutines: g++ 12 rejects brace lists of pairs inside coroutine bodies.
http::Headers RedirectHeaders() { return {{"Location", "/settings/observability"}}; }
http::Headers AssetHeaders() {
    return {{"Cache-Control", "no-cache"},
            {"X-Content-Type-Options", "nosniff"},
            {"Content-Security-Policy",
             "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"}};
}

// Kept out of the coroutines: g++ 12 rejects large initializer lists inside coroutine bodies.
std::string GenerationJson(const GenerationInfo& g) {
    const GenerationInfo* info = &g;
    json::array responses;
    for (const auto& a : info->attempts) {
        json::object r{{"model", a.model},
                       {"provider_name", a.provider},
                       {"status", a.status},
                       {"latency", a.latency_ms}};
        if (!a.error.empty()) r["error"] = a.error;
        responses.push_back(std::move(r));
    }
    json::object data{
        {"id", info->id},
        {"created_at", base::IsoSeconds(info->created_at)},
        {"model", info->model},
        {"provider_name", info->provider_name},
        {"provider_responses", std::move(responses)},
        {"api_type", "completions"},
        {"streamed", info->streamed},
        {"cancelled", info->cancelled},
        {"finish_reason",
         info->finish_reason.empty() ? json::value(nullptr) : json::value(info->finish_reason)},
        {"native_finish_reason", info->native_finish_reason.empty()
                                     ? json::value(nullptr)
                                     : json::value(info->native_finish_reason)},
        {"tokens_prompt", info->usage.prompt_tokens},
        {"tokens_completion", info->usage.completion_tokens},
        {"native_tokens_prompt", info->usage.prompt_tokens},
        {"native_tokens_completion", info->usage.completion_tokens},
        {"native_tokens_reasoning", info->usage.reasoning_tokens},
        {"native_tokens_cached", info->usage.cached_tokens},
        {"total_cost", info->cost.total},
        {"usage", info->cost.total},
        {"is_byok", false},
        {"latency", info->latency_ms},
        {"generation_time", info->generation_time_ms},
        {"external_user", info->user.empty() ? json::value(nullptr) : json::value(info->user)},
        {"session_id",
         info->session_id.empty() ? json::value(nullptr) : json::value(info->session_id)},
        {"status", info->status},
        {"error", info->error.empty() ? json::value(nullptr) : json::value(info->error)},
        {"workspace_id", info->workspace_id},
    };
    if (info->time_to_first_token_ms) data["time_to_first_token"] = *info->time_to_first_token_ms;
    return json::serialize(json::object{{"data", std::move(data)}});
}

std::string KeyJson(const store::ApiKey& key, double cost, int64_t requests) {
    json::object data{{"label", key.name},
                      {"name", key.name},
                      {"hint", key.hint},
                      {"limit", nullptr},
                      {"limit_remaining", nullptr},
                      {"limit_reset", nullptr},
                      {"usage", cost},
                      {"requests", requests},
                      {"is_free_tier", false},
                      {"is_management_key", key.management},
                      {"is_provisioning_key", key.management},
                      {"include_byok_in_limit", false},
                      {"expires_at", nullptr},
                      {"created_at", base::IsoSeconds(key.created_at)},
                      {"workspace_id", key.workspace_id}};
    return json::serialize(json::object{{"data", std::move(data)}});
}

}  // namespace

Gateway::Gateway(const config::Config& config, store::Store& store, trace::RecordSink* sink)
    : config_(config),
      store_(store),
      sink_(sink),
      keys_(store, std::chrono::seconds(5)),
      catalog_(config.models) {}

Status Gateway::Init() {
    for (const auto& pc : config_.providers) {
        auto p = providers::CreateProvider(pc);
        if (!p) return p.error();
        providers_[pc.name] = std::move(p.value());
    }
    json::array data;
    for (const auto& m : catalog_.models()) {
        json::object pricing{{"prompt", providers::PriceString(m.prompt_price)},
                             {"completion", providers::PriceString(m.completion_price)},
                             {"request", "0"},
                             {"image", "0"},
                             {"input_cache_read", providers::PriceString(m.cached_prompt_price)}};
        json::object architecture{{"modality", "text->text"},
                                  {"input_modalities", json::array{"text"}},
                                  {"output_modalities", json::array{"text"}},
                                  {"tokenizer", "Other"},
                                  {"instruct_type", nullptr}};
        json::object top_provider{{"context_length", m.context_length},
                                  {"max_completion_tokens", nullptr},
                                  {"is_moderated", false}};
        data.push_back(json::object{
            {"id", m.id},
            {"canonical_slug", m.id},
            {"name", m.name},
            {"created", m.created},
            {"description", m.description},
            {"context_length", m.context_length},
            {"architecture", std::move(architecture)},
            {"pricing", std::move(pricing)},
            {"top_provider", std::move(top_provider)},
            {"per_request_limits", nullptr},
            {"supported_parameters",
             json::array{"max_tokens", "temperature", "top_p", "stop", "frequency_penalty",
                         "presence_penalty", "seed", "tools", "tool_choice", "response_format"}}});
    }
    models_json_ = json::serialize(json::object{{"data", std::move(data)}});
    return Status::Ok();
}

namespace {

// The route label of a path: a fixed set, so that unknown paths cannot grow the series.
std::string_view RouteLabel(std::string_view path) {
    static constexpr std::string_view kRoutes[] = {"/api/v1/chat/completions",
                                                   "/api/v1/models",
                                                   "/api/v1/generation",
                                                   "/api/v1/key",
                                                   "/healthz",
                                                   "/readyz",
                                                   "/metrics"};
    if (path.rfind("/v1/", 0) == 0) {
        for (auto r : kRoutes) {
            if (r.substr(4) == path) return r;
        }
    }
    for (auto r : kRoutes) {
        if (r == path) return r;
    }
    if (path.rfind("/api/v1/observability", 0) == 0) return "/api/v1/observability";
    if (path == "/" || path.rfind("/settings", 0) == 0 || path.rfind("/assets", 0) == 0) {
        return "/settings";
    }
    return "other";
}

}  // namespace

asio::awaitable<void> Gateway::Handle(http::Exchange& ex) {
    const auto start = std::chrono::steady_clock::now();
    std::string model;
    co_await Dispatch(ex, model);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    // No response head: the client went away first (nginx's 499).
    metrics_.ObserveRequest(RouteLabel(ex.path()), ex.status() ? ex.status() : 499, model,
                            took.count());
}

asio::awaitable<void> Gateway::Dispatch(http::Exchange& ex, std::string& model) {
    const std::string_view path = ex.path();
    const std::string_view method = ex.method();

    if (path == "/metrics") {
        if (method != "GET") {
            co_await RespondError(ex, {405, "use GET", {}});
            co_return;
        }
        std::string text;
        metrics_.Render(text);
        if (extra_metrics_) extra_metrics_(text);
        co_await ex.Respond(200, "text/plain; version=0.0.4; charset=utf-8", std::move(text));
        co_return;
    }
    if (path == "/healthz") {
        co_await ex.Respond(200, kJson, R"({"status":"ok"})");
        co_return;
    }
    if (path == "/readyz") {
        if (draining_) {
            co_await ex.Respond(503, kJson, R"({"status":"draining"})");
        } else {
            co_await ex.Respond(200, kJson, R"({"status":"ready"})");
        }
        co_return;
    }
    if (path == "/api/v1/models" || path == "/v1/models") {
        if (method != "GET") {
            co_await RespondError(ex, {405, "use GET", {}});
            co_return;
        }
        co_await HandleModels(ex);
        co_return;
    }

    if (method == "GET") {
        if (path == "/") {
            co_await ex.Respond(302, "text/plain", "", RedirectHeaders());
            co_return;
        }
        if (auto asset = web::FindAsset(path)) {
            co_await ex.Respond(200, asset->content_type, std::string(asset->body), AssetHeaders());
            co_return;
        }
    }

    enum class Route { kChat, kGeneration, kKey, kManagement, kNone };
    Route route = Route::kNone;
    std::string_view want_method;
    if (path == "/api/v1/chat/completions" || path == "/v1/chat/completions") {
        route = Route::kChat;
        want_method = "POST";
    } else if (path == "/api/v1/generation" || path == "/v1/generation") {
        route = Route::kGeneration;
        want_method = "GET";
    } else if (path == "/api/v1/key" || path == "/v1/key") {
        route = Route::kKey;
        want_method = "GET";
    } else if (management_ &&
               (path == "/api/v1/observability" || path.rfind("/api/v1/observability/", 0) == 0)) {
        route = Route::kManagement;
        want_method = method;  // the management API checks methods per route
    }
    if (route == Route::kNone) {
        co_await RespondError(ex, api::ApiError::NotFound("no route for " + std::string(method) +
                                                          " " + std::string(path)));
        co_return;
    }
    if (method != want_method) {
        co_await RespondError(
            ex, {405, "use " + std::string(want_method) + " for " + std::string(path), {}});
        co_return;
    }

    const std::string_view token = BearerToken(ex.header("authorization"));
    if (token.empty()) {
        co_await RespondError(
            ex, api::ApiError::Unauthorized(
                    "Missing Authentication header: send Authorization: Bearer <key>"));
        co_return;
    }
    auto key = keys_.Lookup(token);
    if (!key) {
        spdlog::error("key lookup failed: {}", key.error().message);
        co_await RespondError(ex, api::ApiError::Internal("the key store is unavailable"));
        co_return;
    }
    if (!key->has_value()) {
        co_await RespondError(ex, api::ApiError::Unauthorized("Invalid or revoked API key"));
        co_return;
    }
    const store::ApiKey& k = **key;
    switch (route) {
        case Route::kChat:
            if (k.management) {
                co_await RespondError(ex, api::ApiError::Forbidden(
                                              "management keys cannot be used for inference; "
                                              "create an inference key with `beacon keys create`"));
                co_return;
            }
            co_await HandleChat(ex, k, model);
            break;
        case Route::kGeneration:
            co_await HandleGeneration(ex, k);
            break;
        case Route::kKey:
            co_await HandleKey(ex, k);
            break;
        case Route::kManagement:
            if (!k.management) {
                co_await RespondError(ex, api::ApiError::Forbidden(
                                              "this endpoint needs a management key "
                                              "(`beacon keys create --name NAME --management`)"));
                co_return;
            }
            co_await management_->Handle(ex, k);
            break;
        case Route::kNone:
            break;
    }
}

asio::awaitable<void> Gateway::HandleModels(http::Exchange& ex) {
    co_await ex.Respond(200, kJson, models_json_);
}

asio::awaitable<void> Gateway::HandleGeneration(http::Exchange& ex, const store::ApiKey& key) {
    const std::string id = http::QueryParam(ex.query(), "id");
    if (id.empty()) {
        co_await RespondError(ex, api::ApiError::BadRequest("id: required query parameter"));
        co_return;
    }
    auto info = generations_.Find(id);
    if (!info || info->workspace_id != key.workspace_id) {
        co_await RespondError(ex, api::ApiError::NotFound("Generation " + id + " not found"));
        co_return;
    }
    co_await ex.Respond(200, kJson, GenerationJson(*info));
}

asio::awaitable<void> Gateway::HandleKey(http::Exchange& ex, const store::ApiKey& key) {
    KeyUsage usage;
    {
        std::lock_guard lock(usage_mu_);
        if (auto it = usage_by_key_.find(key.id); it != usage_by_key_.end()) usage = it->second;
    }
    co_await ex.Respond(200, kJson, KeyJson(key, usage.cost, usage.requests));
}

}  // namespace beacon::gateway
