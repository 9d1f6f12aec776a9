#include "admin/management_api.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <chrono>
#include <ctime>
#include <optional>

#include "api/error.h"
#include "base/ids.h"
#include "base/iso_time.h"
#include "broadcast/destinations/langfuse/connection_test.h"
#include "broadcast/destinations/langfuse/langfuse_destination.h"
#include "broadcast/destinations/langfuse/mapping.h"
#include "broadcast/registry.h"

namespace beacon::admin {
namespace asio = boost::asio;
namespace json = boost::json;
using broadcast::langfuse::ConnectionTest;

namespace {

constexpr std::string_view kJson = "application/json";
constexpr auto kTestBudget = std::chrono::milliseconds(5000);
constexpr std::string_view kPrefix = "/api/v1/observability";

json::value IsoMsOrNull(int64_t unix_ms) {
    if (unix_ms <= 0) return nullptr;
    return json::value(base::IsoMillis(unix_ms * 1000000));
}

json::value StringOrNull(const std::string& s) {
    return s.empty() ? json::value(nullptr) : json::value(s);
}

std::string Data(json::value v) { return json::serialize(json::object{{"data", std::move(v)}}); }
std::string EnabledJson(bool on) { return Data(json::object{{"enabled", on}}); }
std::string DeletedJson(const std::string& id) {
    return Data(json::object{{"id", id}, {"deleted", true}});
}

asio::awaitable<void> RespondError(http::Exchange& ex, const api::ApiError& e) {
    co_await ex.Respond(e.status, kJson, api::ErrorBody(e));
}

json::object TestJson(const ConnectionTest& t) {
    json::object o{{"ok", t.ok}, {"message", t.message}};
    if (!t.ok) o["code"] = t.code;
    if (t.ok) {
        o["projectId"] = t.project_id;
        o["projectName"] = t.project_name;
        o["serverVersion"] =
            t.server_version.empty() ? json::value(nullptr) : json::value(t.server_version);
        o["transport"] = t.transport;
    }
    if (!t.suggested_base_url.empty()) o["suggestedBaseUrl"] = t.suggested_base_url;
    return o;
}

std::string TestFailedBody(const ConnectionTest& t) {
    api::ApiError e{400, t.message, {}};
    e.metadata["test"] = TestJson(t);
    return api::ErrorBody(e);
}

// The fields a create or update may carry, validated; absent fields stay unset.
struct DestinationInput {
    std::optional<std::string> type, name, public_key, secret_key, base_url;
    std::optional<bool> enabled, privacy_mode;
    std::optional<double> sampling_rate;
    std::optional<std::vector<std::string>> api_key_ids;
};

// Accepts the camelCase names of the docs and OpenRouter's snake_case spellings.
const json::value* Field(const json::object& o, std::string_view camel, std::string_view snake) {
    if (auto v = o.if_contains(camel)) return v;
    if (!snake.empty()) return o.if_contains(snake);
    return nullptr;
}

Result<DestinationInput> ParseInput(std::string_view body, bool create) {
    boost::system::error_code ec;
    json::value root = json::parse(body, ec);
    if (ec || !root.is_object()) return Error{"body: expected a JSON object"};
    const auto& o = root.as_object();
    DestinationInput in;
    auto str = [&](const json::value* v, std::string_view field, size_t max,
                   std::optional<std::string>& out) -> Status {
        if (!v || v->is_null()) return Status::Ok();
        if (!v->is_string()) return Error{std::string(field) + ": expected a string"};
        if (v->as_string().size() > max) {
            return Error{std::string(field) + ": at most " + std::to_string(max) + " characters"};
        }
        out = std::string(v->as_string());
        return Status::Ok();
    };
    auto boolean = [&](const json::value* v, std::string_view field,
                       std::optional<bool>& out) -> Status {
        if (!v || v->is_null()) return Status::Ok();
        if (!v->is_bool()) return Error{std::string(field) + ": expected true or false"};
        out = v->as_bool();
        return Status::Ok();
    };
    if (auto s = str(Field(o, "type", ""), "type", 64, in.type); !s) return s.error();
    if (auto s = str(Field(o, "name", ""), "name", 100, in.name); !s) return s.error();
    if (auto s = boolean(Field(o, "enabled", ""), "enabled", in.enabled); !s) return s.error();
    if (auto s = boolean(Field(o, "privacyMode", "privacy_mode"), "privacyMode", in.privacy_mode);
        !s) {
        return s.error();
    }
    if (auto v = Field(o, "samplingRate", "sampling_rate"); v && !v->is_null()) {
        if (!v->is_number()) return Error{"samplingRate: expected a number from 0.0001 to 1"};
        const double r = v->to_number<double>();
        if (!(r >= 0.0001 && r <= 1))
            return Error{"samplingRate: expected a number from 0.0001 to 1"};
        in.sampling_rate = r;
    }
    if (auto v = Field(o, "apiKeyIds", "api_key_ids"); v && !v->is_null()) {
        if (!v->is_array()) return Error{"apiKeyIds: expected an array of key ids"};
        std::vector<std::string> ids;
        for (const auto& id : v->as_array()) {
            if (!id.is_string()) return Error{"apiKeyIds: expected an array of key ids"};
            ids.emplace_back(id.as_string());
        }
        in.api_key_ids = std::move(ids);
    }
    const json::object* config = nullptr;
    if (auto c = o.if_contains("config"); c && !c->is_null()) {
        if (!c->is_object()) return Error{"config: expected an object"};
        config = &c->as_object();
    }
    if (config) {
        if (auto s = str(Field(*config, "publicKey", "public_key"), "config.publicKey", 512,
                         in.public_key);
            !s) {
            return s.error();
        }
        if (auto s = str(Field(*config, "secretKey", "secret_key"), "config.secretKey", 512,
                         in.secret_key);
            !s) {
            return s.error();
        }
        if (auto s =
                str(Field(*config, "baseUrl", "base_url"), "config.baseUrl", 2048, in.base_url);
            !s) {
            return s.error();
        }
    }
    if (in.type && *in.type != "langfuse") {
        return Error{"type: unknown type \"" + *in.type + "\" (supported: langfuse)"};
    }
    if (create) {
        if (!in.type) return Error{"type: required (\"langfuse\")"};
        if (!in.public_key || in.public_key->empty()) return Error{"config.publicKey: required"};
        if (!in.secret_key || in.secret_key->empty()) return Error{"config.secretKey: required"};
    } else {
        if (in.public_key && in.public_key->empty())
            return Error{"config.publicKey: must not be empty"};
        if (in.secret_key && in.secret_key->empty()) {
            in.secret_key.reset();  // an empty secret in an edit form means "keep the stored one"
        }
    }
    if (in.base_url) {
        if (in.base_url->empty()) {
            in.base_url = std::string(broadcast::langfuse::kDefaultBaseUrl);
        } else {
            auto url = boost::urls::parse_absolute_uri(*in.base_url);
            if (!url || (url->scheme() != "http" && url->scheme() != "https") ||
                url->host().empty()) {
                return Error{"config.baseUrl: expected an http:// or https:// URL, got \"" +
                             *in.base_url + "\""};
            }
        }
    }
    return in;
}

Status CheckKeyIds(store::Store& store, const store::ApiKey& caller,
                   const std::vector<std::string>& ids) {
    auto keys = store.ListKeys();
    if (!keys) return keys.error();
    for (const auto& id : ids) {
        bool found = false;
        for (const auto& k : *keys) {
            found |= (k.id == id && k.workspace_id == caller.workspace_id && !k.management);
        }
        if (!found) return Error{"apiKeyIds: no inference key with id \"" + id + "\""};
    }
    return Status::Ok();
}

std::shared_ptr<trace::TraceRecord> TestRecord(const std::string& workspace) {
    auto r = std::make_shared<trace::TraceRecord>();
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    r->generation_id = "gen-test-" + std::to_string(now / 1000000000) + "-" + base::RandomAlnum(12);
    r->workspace_id = workspace;
    r->api_key_name = "beacon-test";
    r->trace.present = true;
    r->trace.trace_name = "Beacon Test Trace";
    r->trace.generation_name = "Test Generation";
    r->model = "beacon/test";
    r->provider = "Beacon";
    r->model_parameters_json = R"({"stream":false})";
    r->input_json =
        R"([{"role":"user","content":"Beacon test trace: is this destination receiving?"}])";
    r->output_text = "Yes. This trace was sent by Beacon's \"Send test trace\".";
    r->finish_reason = "stop";
    r->native_finish_reason = "stop";
    r->usage = {12, 14, 26, 0, 0, true};
    r->start_ns = now - 250000000;
    r->end_ns = now;
    r->attempts.push_back({"beacon/test", "Beacon", 200, "", 250});
    return r;
}

}  // namespace

ManagementApi::ManagementApi(store::Store& store, broadcast::Broadcaster& broadcaster,
                             SecretBox secrets, const config::BroadcastConfig& options)
    : store_(store), broadcaster_(broadcaster), secrets_(std::move(secrets)), options_(options) {}

Result<config::DestinationConfig> ManagementApi::ToConfig(const store::StoredDestination& d) const {
    auto secret = secrets_.Unseal(d.secret_sealed, d.id);
    if (!secret) return secret.error();
    config::DestinationConfig c;
    c.id = d.id;
    c.workspace_id = d.workspace_id;
    c.name = d.name;
    c.type = d.type;
    c.enabled = d.enabled;
    c.privacy_mode = d.privacy_mode;
    c.sampling_rate = d.sampling_rate;
    c.api_key_names = d.api_key_ids;
    c.public_key = d.public_key;
    c.secret_key = std::move(secret.value());
    c.base_url = d.base_url;
    c.transport = d.transport;
    return c;
}

Status ManagementApi::Load() {
    auto workspaces = store_.WorkspacesWithBroadcast();
    if (!workspaces) return workspaces.error();
    for (const auto& w : *workspaces) broadcaster_.SetWorkspaceEnabled(w, true);
    auto all = store_.ListDestinations("");
    if (!all) return all.error();
    for (const auto& d : *all) {
        auto c = ToConfig(d);
        if (!c) {
            spdlog::error("destination {} ({}) not loaded: {}", d.id, d.name, c.error().message);
            continue;
        }
        if (auto s = broadcaster_.Upsert(*c); !s) {
            spdlog::error("destination {} ({}) not loaded: {}", d.id, d.name, s.error().message);
        }
    }
    return Status::Ok();
}

json::object HealthJson(const broadcast::DestinationHealth& h) {
    return json::object{
        {"healthy", h.healthy},
        {"unhealthyReason", h.healthy ? json::value(nullptr) : StringOrNull(h.unhealthy_reason)},
        {"accepted", h.accepted},
        {"delivered", h.delivered},
        {"failed", h.failed},
        {"retried", h.retried},
        {"dropped", h.dropped()},
        {"droppedByReason", json::object{{"rejected", h.dropped_rejected},
                                         {"spoolFull", h.dropped_spool_full},
                                         {"queueFull", h.dropped_queue_full},
                                         {"corrupt", h.dropped_corrupt},
                                         {"spoolError", h.dropped_spool_error},
                                         {"gaveUp", h.dropped_gave_up},
                                         {"shutdown", h.dropped_shutdown}}},
        {"backlog", h.backlog},
        {"backlogBytes", h.backlog_bytes},
        {"lastSuccessAt", IsoMsOrNull(h.last_success_unix_ms)},
        {"lastErrorAt", IsoMsOrNull(h.last_error_unix_ms)},
        {"lastError", StringOrNull(h.last_error)},
    };
}

std::string ManagementApi::DestinationJson(const store::StoredDestination& d) const {
    std::string masked = "...";
    if (auto secret = secrets_.Unseal(d.secret_sealed, d.id)) masked = MaskSecret(*secret);
    json::array keys;
    for (const auto& k : d.api_key_ids) keys.emplace_back(k);
    // A destination not loaded (its secret cannot be unsealed) shows empty health.
    json::object health =
        HealthJson(broadcaster_.Health(d.id).value_or(broadcast::DestinationHealth{}));
    json::object o{
        {"id", d.id},
        {"type", d.type},
        {"name", d.name},
        {"enabled", d.enabled},
        {"privacyMode", d.privacy_mode},
        {"samplingRate", d.sampling_rate},
        {"apiKeyIds", std::move(keys)},
        {"config",
         json::object{{"publicKey", d.public_key}, {"secretKey", masked}, {"baseUrl", d.base_url}}},
        {"transport", d.transport},
        {"server",
         json::object{{"version", d.server_version.empty() ? json::value(nullptr)
                                                           : json::value(d.server_version)},
                      {"projectId", d.project_id},
                      {"projectName", d.project_name}}},
        {"createdAt", base::IsoSeconds(d.created_at)},
        {"updatedAt", base::IsoSeconds(d.updated_at)},
        {"health", std::move(health)},
    };
    return json::serialize(o);
}

asio::awaitable<void> ManagementApi::Handle(http::Exchange& ex, const store::ApiKey& key) {
    std::string_view rest = ex.path().substr(kPrefix.size());
    const std::string_view method = ex.method();
    if (rest.empty() || rest == "/") {
        co_await Observability(ex, key);
        co_return;
    }
    if (rest == "/destinations" || rest == "/destinations/") {
        if (method == "GET") {
            co_await List(ex, key);
        } else if (method == "POST") {
            co_await Create(ex, key);
        } else {
            co_await RespondError(ex, {405, "use GET or POST", {}});
        }
        co_return;
    }
    if (rest == "/spool") {
        if (method != "GET") {
            co_await RespondError(ex, {405, "use GET", {}});
        } else {
            co_await ex.Respond(200, kJson, SpoolJson(key));
        }
        co_return;
    }
    if (rest == "/spool/replay") {
        if (method != "POST") {
            co_await RespondError(ex, {405, "use POST", {}});
        } else {
            co_await Replay(ex, key);
        }
        co_return;
    }
    if (rest == "/destinations/test") {
        if (method != "POST") {
            co_await RespondError(ex, {405, "use POST", {}});
        } else {
            co_await TestUnsaved(ex, key);
        }
        co_return;
    }
    constexpr std::string_view kDest = "/destinations/";
    if (rest.rfind(kDest, 0) != 0) {
        co_await RespondError(ex,
                              api::ApiError::NotFound("no route for " + std::string(ex.path())));
        co_return;
    }
    rest.remove_prefix(kDest.size());
    const auto slash = rest.find('/');
    const std::string id(rest.substr(0, slash));
    const std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash);

    auto found = store_.GetDestination(id);
    if (!found) {
        co_await RespondError(ex, api::ApiError::Internal(found.error().message));
        co_return;
    }
    if (!found->has_value() || (*found)->workspace_id != key.workspace_id) {
        co_await RespondError(ex, api::ApiError::NotFound("no destination \"" + id + "\""));
        co_return;
    }
    store::StoredDestination d = std::move(**found);
    if (action.empty()) {
        if (method == "GET") {
            co_await Get(ex, d);
        } else if (method == "PATCH") {
            co_await Patch(ex, std::move(d));
        } else if (method == "DELETE") {
            co_await Delete(ex, d);
        } else {
            co_await RespondError(ex, {405, "use GET, PATCH or DELETE", {}});
        }
    } else if (action == "/test" && method == "POST") {
        co_await TestSaved(ex, d);
    } else if (action == "/send-test-trace" && method == "POST") {
        co_await SendTestTrace(ex, d);
    } else {
        co_await RespondError(ex, api::ApiError::NotFound("no route for " + std::string(method) +
                                                          " " + std::string(ex.path())));
    }
}

asio::awaitable<void> ManagementApi::Observability(http::Exchange& ex, const store::ApiKey& key) {
    if (ex.method() == "PUT" || ex.method() == "PATCH") {
        boost::system::error_code ec;
        auto v = json::parse(ex.body(), ec);
        const json::value* enabled =
            (!ec && v.is_object()) ? v.as_object().if_contains("enabled") : nullptr;
        if (!enabled || !enabled->is_bool()) {
            co_await RespondError(ex, api::ApiError::BadRequest("enabled: expected true or false"));
            co_return;
        }
        if (auto s = store_.SetBroadcastEnabled(key.workspace_id, enabled->as_bool()); !s) {
            co_await RespondError(ex, api::ApiError::Internal(s.error().message));
            co_return;
        }
        broadcaster_.SetWorkspaceEnabled(key.workspace_id, enabled->as_bool());
        spdlog::info("broadcast turned {} for workspace {}", enabled->as_bool() ? "on" : "off",
                     key.workspace_id);
    } else if (ex.method() != "GET") {
        co_await RespondError(ex, {405, "use GET or PUT", {}});
        co_return;
    }
    auto on = store_.GetBroadcastEnabled(key.workspace_id);
    if (!on) {
        co_await RespondError(ex, api::ApiError::Internal(on.error().message));
        co_return;
    }
    co_await ex.Respond(200, kJson, EnabledJson(*on));
}

asio::awaitable<void> ManagementApi::List(http::Exchange& ex, const store::ApiKey& key) {
    auto list = store_.ListDestinations(key.workspace_id);
    if (!list) {
        co_await RespondError(ex, api::ApiError::Internal(list.error().message));
        co_return;
    }
    std::string body = R"({"data":[)";
    for (size_t i = 0; i < list->size(); ++i) {
        if (i) body.push_back(',');
        body += DestinationJson((*list)[i]);
    }
    body += "]}";
    co_await ex.Respond(200, kJson, std::move(body));
}

asio::awaitable<void> ManagementApi::TestUnsaved(http::Exchange& ex, const store::ApiKey& key) {
    auto in = ParseInput(ex.body(), true);
    if (!in) {
        co_await RespondError(ex, api::ApiError::BadRequest(in.error().message));
        co_return;
    }
    std::string base = in->base_url.value_or(std::string(broadcast::langfuse::kDefaultBaseUrl));
    ConnectionTest t = co_await broadcast::langfuse::TestConnection(
        base, *in->public_key, *in->secret_key, options_.langfuse_regions, kTestBudget);
    co_await ex.Respond(200, kJson, Data(TestJson(t)));
}

asio::awaitable<void> ManagementApi::Create(http::Exchange& ex, const store::ApiKey& key) {
    auto in = ParseInput(ex.body(), true);
    if (!in) {
        co_await RespondError(ex, api::ApiError::BadRequest(in.error().message));
        co_return;
    }
    if (in->api_key_ids) {
        if (auto s = CheckKeyIds(store_, key, *in->api_key_ids); !s) {
            co_await RespondError(ex, api::ApiError::BadRequest(s.error().message));
            co_return;
        }
    }
    store::StoredDestination d;
    d.id = "dst_" + base::RandomHex(8);
    d.workspace_id = key.workspace_id;
    d.type = *in->type;
    d.name = in->name.value_or("Langfuse");
    d.enabled = in->enabled.value_or(true);
    d.privacy_mode = in->privacy_mode.value_or(false);
    d.sampling_rate = in->sampling_rate.value_or(1.0);
    d.api_key_ids = in->api_key_ids.value_or(std::vector<std::string>{});
    d.public_key = *in->public_key;
    d.base_url = in->base_url.value_or(std::string(broadcast::langfuse::kDefaultBaseUrl));

    // Save only upon a passing test: the server decides, whatever the page shows.
    ConnectionTest t = co_await broadcast::langfuse::TestConnection(
        d.base_url, d.public_key, *in->secret_key, options_.langfuse_regions, kTestBudget);
    if (!t.ok) {
        co_await ex.Respond(400, kJson, TestFailedBody(t));
        co_return;
    }
    d.transport = t.transport;
    d.server_version = t.server_version;
    d.project_id = t.project_id;
    d.project_name = t.project_name;
    d.created_at = d.updated_at = static_cast<int64_t>(std::time(nullptr));
    d.secret_sealed = secrets_.Seal(*in->secret_key, d.id);

    std::string error;
    {
        std::lock_guard lock(mu_);
        auto existing = store_.ListDestinations(key.workspace_id);
        int same_type = 0;
        if (existing) {
            for (const auto& e : *existing) same_type += (e.type == d.type);
        }
        if (!existing) {
            error = existing.error().message;
        } else if (same_type >= kMaxDestinationsPerType) {
            error = "type: at most " + std::to_string(kMaxDestinationsPerType) + " " + d.type +
                    " destinations per workspace";
        } else if (auto s = store_.PutDestination(d); !s) {
            error = s.error().message;
        }
    }
    if (!error.empty()) {
        // Named first: g++ 12 miscompiles a prvalue-producing ?: inside co_await.
        const api::ApiError failure = error.rfind("type:", 0) == 0
                                          ? api::ApiError::BadRequest(error)
                                          : api::ApiError::Internal(error);
        co_await RespondError(ex, failure);
        co_return;
    }
    auto config = ToConfig(d);
    if (config) {
        if (auto s = broadcaster_.Upsert(*config); !s) spdlog::error("{}", s.error().message);
    }
    spdlog::info("destination {} ({}) created in workspace {}", d.id, d.name, d.workspace_id);
    co_await ex.Respond(201, kJson, "{\"data\":" + DestinationJson(d) + "}");
}

asio::awaitable<void> ManagementApi::Get(http::Exchange& ex, const store::StoredDestination& d) {
    co_await ex.Respond(200, kJson, "{\"data\":" + DestinationJson(d) + "}");
}

asio::awaitable<void> ManagementApi::Patch(http::Exchange& ex, store::StoredDestination d) {
    auto in = ParseInput(ex.body(), false);
    if (!in) {
        co_await RespondError(ex, api::ApiError::BadRequest(in.error().message));
        co_return;
    }
    if (in->type && *in->type != d.type) {
        co_await RespondError(ex, api::ApiError::BadRequest("type: cannot be changed"));
        co_return;
    }
    if (in->api_key_ids) {
        store::ApiKey owner;
        owner.workspace_id = d.workspace_id;
        if (auto s = CheckKeyIds(store_, owner, *in->api_key_ids); !s) {
            co_await RespondError(ex, api::ApiError::BadRequest(s.error().message));
            co_return;
        }
        d.api_key_ids = *in->api_key_ids;
    }
    auto stored_secret = secrets_.Unseal(d.secret_sealed, d.id);
    if (!stored_secret && !in->secret_key) {
        co_await RespondError(ex, api::ApiError::Internal(stored_secret.error().message));
        co_return;
    }
    const bool reconnect = (in->public_key && *in->public_key != d.public_key) ||
                           (in->base_url && *in->base_url != d.base_url) ||
                           in->secret_key.has_value();
    const std::string secret = in->secret_key ? *in->secret_key : stored_secret.value();
    if (in->public_key) d.public_key = *in->public_key;
    if (in->base_url) d.base_url = *in->base_url;
    if (in->name) d.name = *in->name;
    if (in->enabled) d.enabled = *in->enabled;
    if (in->privacy_mode) d.privacy_mode = *in->privacy_mode;
    if (in->sampling_rate) d.sampling_rate = *in->sampling_rate;
    if (reconnect) {
        ConnectionTest t = co_await broadcast::langfuse::TestConnection(
            d.base_url, d.public_key, secret, options_.langfuse_regions, kTestBudget);
        if (!t.ok) {
            co_await ex.Respond(400, kJson, TestFailedBody(t));
            co_return;
        }
        d.transport = t.transport;
        d.server_version = t.server_version;
        d.project_id = t.project_id;
        d.project_name = t.project_name;
        d.secret_sealed = secrets_.Seal(secret, d.id);
    }
    d.updated_at = static_cast<int64_t>(std::time(nullptr));
    Status saved;
    bool gone = false;
    {
        // A DELETE may have run while the test was in flight: do not bring the row back.
        std::lock_guard lock(mu_);
        auto still = store_.GetDestination(d.id);
        gone = still && !still->has_value();
        if (!gone) saved = store_.PutDestination(d);
        if (!gone && saved) {
            if (auto config = ToConfig(d)) {
                if (auto s = broadcaster_.Upsert(*config); !s)
                    spdlog::error("{}", s.error().message);
            }
        }
    }
    if (gone) {
        co_await RespondError(ex, api::ApiError::NotFound("no destination \"" + d.id + "\""));
        co_return;
    }
    if (!saved) {
        co_await RespondError(ex, api::ApiError::Internal(saved.error().message));
        co_return;
    }
    co_await ex.Respond(200, kJson, "{\"data\":" + DestinationJson(d) + "}");
}

asio::awaitable<void> ManagementApi::Delete(http::Exchange& ex, const store::StoredDestination& d) {
    Status deleted;
    {
        std::lock_guard lock(mu_);
        deleted = store_.DeleteDestination(d.id);
        if (deleted) broadcaster_.Remove(d.id);
    }
    if (!deleted) {
        co_await RespondError(ex, api::ApiError::NotFound(deleted.error().message));
        co_return;
    }
    spdlog::info("destination {} ({}) deleted", d.id, d.name);
    co_await ex.Respond(200, kJson, DeletedJson(d.id));
}

asio::awaitable<void> ManagementApi::TestSaved(http::Exchange& ex,
                                               const store::StoredDestination& d) {
    auto secret = secrets_.Unseal(d.secret_sealed, d.id);
    if (!secret) {
        co_await RespondError(ex, api::ApiError::Internal(secret.error().message));
        co_return;
    }
    ConnectionTest t = co_await broadcast::langfuse::TestConnection(
        d.base_url, d.public_key, *secret, options_.langfuse_regions, kTestBudget);
    co_await ex.Respond(200, kJson, Data(TestJson(t)));
}

asio::awaitable<void> ManagementApi::SendTestTrace(http::Exchange& ex,
                                                   const store::StoredDestination& d) {
    auto config = ToConfig(d);
    if (!config) {
        co_await RespondError(ex, api::ApiError::Internal(config.error().message));
        co_return;
    }
    config->timeout_ms = static_cast<int>(kTestBudget.count());
    auto destination = broadcast::CreateDestination(*config);
    if (!destination) {
        co_await RespondError(ex, api::ApiError::Internal(destination.error().message));
        co_return;
    }
    std::vector<trace::RecordPtr> batch{TestRecord(d.workspace_id)};
    base::Canceller cancel;
    broadcast::ExportOutcome outcome = co_await (*destination)->Export(batch, cancel);
    json::object result;
    if (outcome.kind == broadcast::ExportOutcome::Kind::kOk) {
        result["ok"] = true;
        result["traceId"] = broadcast::langfuse::TraceIdFrom(batch.front()->generation_id);
        result["message"] = "A trace named \"Beacon Test Trace\" was sent.";
    } else {
        result["ok"] = false;
        result["message"] =
            outcome.reason.empty() ? "the destination refused the test trace" : outcome.reason;
    }
    co_await ex.Respond(200, kJson, Data(std::move(result)));
}

}  // namespace beacon::admin

namespace beacon::admin {

namespace {

// Outside the coroutine: g++ 12 rejects initializer lists in coroutine bodies.
std::string ReplayJson(const std::string& id, int64_t since_ms, int64_t replayed) {
    return Data(json::object{{"destination", id},
                             {"since", base::IsoMillis(since_ms * 1000000)},
                             {"replayed", replayed}});
}

}  // namespace

std::string ManagementApi::SpoolJson(const store::ApiKey& key) const {
    json::value spool = nullptr;
    if (auto st = broadcaster_.SpoolStatus()) {
        spool =
            json::object{{"path", st->path},          {"records", st->records},
                         {"bytes", st->bytes},        {"fileBytes", st->file_bytes},
                         {"maxBytes", st->max_bytes}, {"stored", st->stored},
                         {"evicted", st->evicted},    {"corruptSetAside", st->corrupt_set_aside}};
    }
    json::array dests;
    for (const auto& h : broadcaster_.Health()) {
        // This workspace's destinations and those of the config file (every workspace's).
        if (!h.workspace_id.empty() && h.workspace_id != key.workspace_id) continue;
        json::object o = HealthJson(h);
        o.emplace("id", h.id);
        o.emplace("name", h.name);
        o.emplace("type", h.type);
        o.emplace("source", h.workspace_id.empty() ? "config" : "api");
        dests.push_back(std::move(o));
    }
    return json::serialize(
        json::object{{"spool", std::move(spool)}, {"destinations", std::move(dests)}});
}

asio::awaitable<void> ManagementApi::Replay(http::Exchange& ex, const store::ApiKey& key) {
    boost::system::error_code ec;
    json::value v = json::parse(ex.body(), ec);
    const json::object* o = (!ec && v.is_object()) ? &v.as_object() : nullptr;
    const json::value* dest = o ? o->if_contains("destination") : nullptr;
    const json::value* since = o ? o->if_contains("since") : nullptr;
    std::optional<int64_t> since_ms;
    if (since && since->is_string()) since_ms = base::ParseIsoMillis(since->as_string());
    if (!dest || !dest->is_string() || dest->as_string().empty()) {
        co_await RespondError(
            ex, api::ApiError::BadRequest("destination: expected the id of a destination"));
        co_return;
    }
    if (!since_ms) {
        co_await RespondError(
            ex, api::ApiError::BadRequest(
                    "since: expected an ISO 8601 time such as \"2026-11-28T10:00:00Z\""));
        co_return;
    }
    const std::string id(dest->as_string());
    auto h = broadcaster_.Health(id);
    if (!h || (!h->workspace_id.empty() && h->workspace_id != key.workspace_id)) {
        co_await RespondError(ex, api::ApiError::NotFound("no destination \"" + id + "\""));
        co_return;
    }
    auto n = broadcaster_.Replay(id, *since_ms);
    if (!n) {
        co_await RespondError(ex, {409, n.error().message, {}});
        co_return;
    }
    co_await ex.Respond(200, kJson, ReplayJson(id, *since_ms, *n));
}

}  // namespace beacon::admin
