#include "cli/remote.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "base/iso_time.h"
#include "base/result.h"
#include "http/client.h"

namespace beacon::cli {
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

struct Remote {
    std::string url;
    std::string key;
};

struct Reply {
    int status = 0;
    json::value body;
};

asio::awaitable<Result<Reply>> Exchange(const Remote& remote, std::string method, std::string path,
                                        std::string body) {
    http::ClientRequest req;
    req.method = std::move(method);
    std::string base = remote.url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    req.url = base + path;
    req.headers.emplace_back("Authorization", "Bearer " + remote.key);
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = std::move(body);
    http::ClientTimeouts t;
    t.connect = std::chrono::seconds(5);
    t.first_byte = std::chrono::seconds(30);
    t.total = std::chrono::seconds(30);
    base::Canceller cancel;
    auto sent = co_await http::Send(std::move(req), t, cancel);
    if (!sent)
        co_return Error{"cannot reach Beacon at " + remote.url + ": " + sent.error().message};
    auto& response = *sent.value();
    auto text = co_await response.ReadAll(16 * 1024 * 1024);
    if (!text) co_return Error{"reading Beacon's answer: " + text.error().message};
    Reply r;
    r.status = response.status();
    boost::system::error_code ec;
    r.body = json::parse(text.value(), ec);
    if (ec) co_return Error{"Beacon answered HTTP " + std::to_string(r.status) + " without JSON"};
    co_return r;
}

asio::awaitable<void> ExchangeInto(const Remote& remote, std::string method, std::string path,
                                   std::string body, std::optional<Result<Reply>>* out) {
    out->emplace(co_await Exchange(remote, std::move(method), std::move(path), std::move(body)));
}

Result<Reply> Call(const Remote& remote, std::string method, std::string path,
                   std::string body = "") {
    asio::io_context ioc;
    std::optional<Result<Reply>> result;
    asio::co_spawn(
        ioc, ExchangeInto(remote, std::move(method), std::move(path), std::move(body), &result),
        asio::detached);
    ioc.run();
    if (!result) return Error{"internal error talking to Beacon"};
    return std::move(*result);
}

int Fail(const std::string& message) {
    std::cerr << "beacon: " << message << std::endl;
    return 1;
}

// The server's error message, when the answer is an error.
std::optional<std::string> ErrorOf(const Reply& r) {
    if (r.status >= 200 && r.status < 300) return std::nullopt;
    if (r.body.is_object()) {
        if (auto e = r.body.as_object().if_contains("error"); e && e->is_object()) {
            if (auto m = e->as_object().if_contains("message"); m && m->is_string()) {
                return std::string(m->as_string());
            }
        }
    }
    return "Beacon answered HTTP " + std::to_string(r.status);
}

std::string Str(const json::value& v) {
    if (v.is_string()) return std::string(v.as_string());
    if (v.is_null()) return "-";
    return json::serialize(v);
}

const json::value& Path(const json::value& v, std::initializer_list<std::string_view> keys) {
    static const json::value kNull;
    const json::value* cur = &v;
    for (auto k : keys) {
        if (!cur->is_object()) return kNull;
        auto next = cur->as_object().if_contains(k);
        if (!next) return kNull;
        cur = next;
    }
    return *cur;
}

// "2026-11-28T10:00:00Z" as is; "15m" (s, m, h, d) as that long ago.
Result<std::string> SinceToIso(const std::string& since) {
    if (base::ParseIsoMillis(since)) return since;
    static constexpr std::pair<char, int64_t> kUnits[] = {
        {'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    if (since.size() >= 2) {
        int64_t n = 0;
        auto [end, ec] = std::from_chars(since.data(), since.data() + since.size() - 1, n);
        for (auto [unit, ms] : kUnits) {
            if (ec == std::errc() && end == since.data() + since.size() - 1 &&
                since.back() == unit && n >= 0 && n < 100000) {
                const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count();
                return base::IsoMillis((now_ms - n * ms) * 1000000);
            }
        }
    }
    return Error{
        "--since: expected an ISO 8601 time such as 2026-11-28T10:00:00Z or an age "
        "such as 15m, got \"" +
        since + "\""};
}

int SpoolStatus(const Remote& remote, bool as_json) {
    auto r = Call(remote, "GET", "/api/v1/observability/spool");
    if (!r) return Fail(r.error().message);
    if (auto e = ErrorOf(*r)) return Fail(*e);
    if (as_json) {
        std::cout << json::serialize(r->body) << std::endl;
        return 0;
    }
    const auto& sp = Path(r->body, {"spool"});
    if (sp.is_null()) {
        std::cout << "No spool (broadcast.spool.enabled = false): records are held in memory only"
                  << std::endl;
    } else {
        std::cout << "Spool " << Str(Path(sp, {"path"})) << ": " << Str(Path(sp, {"records"}))
                  << " record(s), " << Str(Path(sp, {"bytes"})) << " of "
                  << Str(Path(sp, {"maxBytes"})) << " bytes; evicted " << Str(Path(sp, {"evicted"}))
                  << ", damaged files set aside " << Str(Path(sp, {"corruptSetAside"}))
                  << std::endl;
    }
    std::printf("%-22s %-20s %-9s %-10s %-10s %-8s %-8s %-10s %-24s %s\n", "ID", "NAME", "HEALTHY",
                "DELIVERED", "BACKLOG", "RETRIED", "FAILED", "DROPPED", "LAST SUCCESS",
                "LAST ERROR");
    const auto& dests = Path(r->body, {"destinations"});
    if (!dests.is_array()) return 0;
    for (const auto& d : dests.as_array()) {
        std::string dropped = Str(Path(d, {"dropped"}));
        if (const auto& by = Path(d, {"droppedByReason"}); by.is_object()) {
            std::string detail;
            for (const auto& [reason, n] : by.as_object()) {
                if (n.is_int64() && n.as_int64() > 0) {
                    detail += (detail.empty() ? "" : ",") + std::string(reason) + "=" + Str(n);
                }
            }
            if (!detail.empty()) dropped += " (" + detail + ")";
        }
        const bool healthy = Path(d, {"healthy"}).is_bool() && Path(d, {"healthy"}).as_bool();
        std::printf("%-22s %-20s %-9s %-10s %-10s %-8s %-8s %-10s %-24s %s\n",
                    Str(Path(d, {"id"})).c_str(), Str(Path(d, {"name"})).c_str(),
                    healthy ? "yes" : "NO", Str(Path(d, {"delivered"})).c_str(),
                    Str(Path(d, {"backlog"})).c_str(), Str(Path(d, {"retried"})).c_str(),
                    Str(Path(d, {"failed"})).c_str(), dropped.c_str(),
                    Str(Path(d, {"lastSuccessAt"})).c_str(),
                    Str(healthy ? Path(d, {"lastError"}) : Path(d, {"unhealthyReason"})).c_str());
    }
    return 0;
}

}  // namespace

std::function<int()> AddRemoteCommands(CLI::App& app) {
    auto remote = std::make_shared<Remote>();
    auto add_remote = [remote](CLI::App* sub) {
        sub->add_option("--url", remote->url,
                        "Beacon's address (default $BEACON_URL or http://127.0.0.1:8080)");
        sub->add_option("--key", remote->key, "a management key (default $BEACON_MANAGEMENT_KEY)");
    };

    auto* broadcast = app.add_subcommand("broadcast", "turn Broadcast on or off for the workspace");
    broadcast->require_subcommand(1);
    auto* on = broadcast->add_subcommand("on", "start sending traces to the destinations");
    auto* off = broadcast->add_subcommand("off", "stop sending traces");
    auto* status =
        broadcast->add_subcommand("status", "show whether Broadcast is on, and the destinations");
    for (auto* s : {on, off, status}) add_remote(s);

    auto* dest = app.add_subcommand("destinations", "manage Broadcast destinations");
    dest->require_subcommand(1);
    auto* add = dest->add_subcommand("add", "add a destination (after a passing Test Connection)");
    add->require_subcommand(1);
    auto* add_langfuse = add->add_subcommand("langfuse", "add a Langfuse destination");
    auto opts = std::make_shared<json::object>();
    auto public_key = std::make_shared<std::string>();
    auto secret_key = std::make_shared<std::string>();
    auto base_url = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    auto privacy = std::make_shared<bool>(false);
    auto sampling = std::make_shared<double>(1.0);
    add_langfuse->add_option("--public-key", *public_key, "Langfuse public key (pk-lf-...)")
        ->required();
    add_langfuse->add_option("--secret-key", *secret_key, "Langfuse secret key (sk-lf-...)")
        ->required();
    add_langfuse->add_option("--base-url", *base_url, "default https://us.cloud.langfuse.com");
    add_langfuse->add_option("--name", *name, "a name for the destination");
    add_langfuse->add_flag("--privacy", *privacy,
                           "Privacy Mode: never send prompts or completions");
    add_langfuse->add_option("--sampling-rate", *sampling, "0.0001 to 1 (default 1)");
    add_remote(add_langfuse);
    auto* list = dest->add_subcommand("list", "list destinations (secrets masked)");
    auto id = std::make_shared<std::string>();
    auto* test = dest->add_subcommand("test", "run Test Connection for a saved destination");
    auto* remove = dest->add_subcommand("remove", "delete a destination");
    auto* send = dest->add_subcommand("send-test-trace", "send one test trace to a destination");
    for (auto* s : {test, remove, send}) s->add_option("id", *id, "destination id")->required();
    for (auto* s : {list, test, remove, send}) add_remote(s);

    auto* spool = app.add_subcommand("spool", "the Broadcast spool: health and replay");
    spool->require_subcommand(1);
    auto* spool_status =
        spool->add_subcommand("status", "per destination: delivered, dropped, backlog, errors");
    auto as_json = std::make_shared<bool>(false);
    spool_status->add_flag("--json", *as_json, "print the management API's JSON answer");
    auto* replay = spool->add_subcommand("replay", "send again records still in the spool");
    auto replay_dest = std::make_shared<std::string>();
    auto since = std::make_shared<std::string>();
    replay->add_option("--destination", *replay_dest, "destination id")->required();
    replay
        ->add_option("--since", *since,
                     "an ISO 8601 time (2026-11-28T10:00:00Z) or an age (90s, 15m, 2h, 1d)")
        ->required();
    for (auto* s : {spool_status, replay}) add_remote(s);

    return [=]() -> int {
        const bool any = *on || *off || *status || *add_langfuse || *list || *test || *remove ||
                         *send || *spool_status || *replay;
        if (!any) return -1;
        if (remote->url.empty()) {
            const char* env = std::getenv("BEACON_URL");
            remote->url = env && *env ? env : "http://127.0.0.1:8080";
        }
        if (remote->key.empty()) {
            if (const char* env = std::getenv("BEACON_MANAGEMENT_KEY"); env && *env)
                remote->key = env;
        }
        if (remote->key.empty()) {
            return Fail(
                "a management key is needed: --key or BEACON_MANAGEMENT_KEY "
                "(create one with `beacon keys create --name admin --management`)");
        }
        if (*on || *off || *status) {
            Result<Reply> r = (*on || *off)
                                  ? Call(*remote, "PUT", "/api/v1/observability",
                                         *on ? R"({"enabled":true})" : R"({"enabled":false})")
                                  : Call(*remote, "GET", "/api/v1/observability");
            if (!r) return Fail(r.error().message);
            if (auto e = ErrorOf(*r)) return Fail(*e);
            const bool enabled = Path(r->body, {"data", "enabled"}).is_bool() &&
                                 Path(r->body, {"data", "enabled"}).as_bool();
            std::cout << "Broadcast is " << (enabled ? "on" : "off") << std::endl;
            if (*status) {
                auto d = Call(*remote, "GET", "/api/v1/observability/destinations");
                if (d && !ErrorOf(*d)) {
                    const auto& data = Path(d->body, {"data"});
                    std::cout << (data.is_array() ? data.as_array().size() : 0) << " destination(s)"
                              << std::endl;
                }
            }
            return 0;
        }
        if (*spool_status) return SpoolStatus(*remote, *as_json);
        if (*replay) {
            auto when = SinceToIso(*since);
            if (!when) return Fail(when.error().message);
            json::object body{{"destination", *replay_dest}, {"since", *when}};
            auto r =
                Call(*remote, "POST", "/api/v1/observability/spool/replay", json::serialize(body));
            if (!r) return Fail(r.error().message);
            if (auto e = ErrorOf(*r)) return Fail(*e);
            std::cout << "Replaying " << Str(Path(r->body, {"data", "replayed"}))
                      << " record(s) to " << *replay_dest << " (created since " << *when << ")"
                      << std::endl;
            return 0;
        }
        if (*add_langfuse) {
            json::object cfg{{"publicKey", *public_key}, {"secretKey", *secret_key}};
            if (!base_url->empty()) cfg["baseUrl"] = *base_url;
            json::object body{{"type", "langfuse"},
                              {"privacyMode", *privacy},
                              {"samplingRate", *sampling},
                              {"config", std::move(cfg)}};
            if (!name->empty()) body["name"] = *name;
            auto r =
                Call(*remote, "POST", "/api/v1/observability/destinations", json::serialize(body));
            if (!r) return Fail(r.error().message);
            if (auto e = ErrorOf(*r)) return Fail(*e);
            const auto& d = Path(r->body, {"data"});
            std::cout << "Test Connection passed; saved Langfuse destination \""
                      << Str(Path(d, {"name"})) << "\" (project "
                      << Str(Path(d, {"server", "projectName"})) << ", transport "
                      << Str(Path(d, {"transport"})) << ")" << std::endl;
            std::cout << Str(Path(d, {"id"})) << std::endl;
            return 0;
        }
        if (*list) {
            auto r = Call(*remote, "GET", "/api/v1/observability/destinations");
            if (!r) return Fail(r.error().message);
            if (auto e = ErrorOf(*r)) return Fail(*e);
            std::printf("%-22s %-20s %-9s %-8s %-8s %-8s %-16s %-24s %s\n", "ID", "NAME", "TYPE",
                        "ENABLED", "PRIVACY", "SAMPLING", "SECRET", "LAST DELIVERY", "BASE URL");
            const auto& data = Path(r->body, {"data"});
            if (data.is_array()) {
                for (const auto& d : data.as_array()) {
                    std::printf("%-22s %-20s %-9s %-8s %-8s %-8s %-16s %-24s %s\n",
                                Str(Path(d, {"id"})).c_str(), Str(Path(d, {"name"})).c_str(),
                                Str(Path(d, {"type"})).c_str(), Str(Path(d, {"enabled"})).c_str(),
                                Str(Path(d, {"privacyMode"})).c_str(),
                                Str(Path(d, {"samplingRate"})).c_str(),
                                Str(Path(d, {"config", "secretKey"})).c_str(),
                                Str(Path(d, {"health", "lastSuccessAt"})).c_str(),
                                Str(Path(d, {"config", "baseUrl"})).c_str());
                }
            }
            return 0;
        }
        const std::string path = "/api/v1/observability/destinations/" + *id;
        if (*remove) {
            auto r = Call(*remote, "DELETE", path);
            if (!r) return Fail(r.error().message);
            if (auto e = ErrorOf(*r)) return Fail(*e);
            std::cout << "Removed " << *id << std::endl;
            return 0;
        }
        auto r = Call(*remote, "POST", path + (*test ? "/test" : "/send-test-trace"), "{}");
        if (!r) return Fail(r.error().message);
        if (auto e = ErrorOf(*r)) return Fail(*e);
        const auto& data = Path(r->body, {"data"});
        const bool ok = Path(data, {"ok"}).is_bool() && Path(data, {"ok"}).as_bool();
        if (!ok) return Fail(Str(Path(data, {"message"})));
        std::cout << Str(Path(data, {"message"})) << std::endl;
        return 0;
    };
}

}  // namespace beacon::cli
