#include "cli/app.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include "admin/management_api.h"
#include "admin/metrics_text.h"
#include "base/log.h"
#include "broadcast/broadcaster.h"
#include "cli/remote.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "http/server.h"
#include "store/store.h"

namespace beacon::cli {
namespace {

struct CommonOptions {
    std::string config_path;
    std::string data_dir;
    std::string listen;
    int threads = -1;
};

int Fail(const std::string& message) {
    std::cerr << "beacon: " << message << std::endl;
    return 1;
}

Result<config::Config> ResolveConfig(const CommonOptions& o) {
    config::Config c = config::DefaultConfig();
    std::string path = o.config_path;
    if (path.empty()) {
        if (const char* env = std::getenv("BEACON_CONFIG"); env && *env) path = env;
    }
    if (!path.empty()) {
        auto loaded = config::LoadConfigFile(path);
        if (!loaded) return loaded.error();
        c = std::move(loaded.value());
    }
    if (auto s = config::ApplyEnvironment(c, [](const char* n) { return std::getenv(n); }); !s) {
        return s.error();
    }
    if (!o.data_dir.empty()) c.data_dir = o.data_dir;
    if (!o.listen.empty()) c.server.listen = o.listen;
    if (o.threads >= 0) c.server.threads = o.threads;
    if (auto s = config::Validate(c); !s) return s.error();
    return c;
}

Result<std::unique_ptr<store::Store>> OpenStore(const config::Config& c) {
    std::error_code ec;
    std::filesystem::create_directories(c.data_dir, ec);
    if (ec) return Error{"cannot create data directory " + c.data_dir + ": " + ec.message()};
    return store::OpenSqliteStore((std::filesystem::path(c.data_dir) / "beacon.db").string());
}

broadcast::SpoolOptions SpoolOptionsFor(const config::Config& c) {
    broadcast::SpoolOptions o;
    o.path = c.broadcast.spool.path.empty() ? c.data_dir + "/spool.db" : c.broadcast.spool.path;
    o.max_bytes = c.broadcast.spool.max_bytes;
    o.sync = c.broadcast.spool.sync == "off"    ? broadcast::SpoolSync::kOff
             : c.broadcast.spool.sync == "full" ? broadcast::SpoolSync::kFull
                                                : broadcast::SpoolSync::kNormal;
    return o;
}

// A gateway holds two descriptors per request in flight (the client's and the provider's) plus
// its pooled provider connections; the usual soft limit of 1024 descriptors would cap it near
// 500 concurrent requests. Raised to the hard limit, as nginx (worker_rlimit_nofile) and Go's
// runtime do.
void RaiseDescriptorLimit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    const rlim_t wanted = limit.rlim_max;
    limit.rlim_cur = wanted;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        spdlog::warn("cannot raise the open-file limit to {}: {}", wanted, std::strerror(errno));
    }
}

int Serve(const CommonOptions& o) {
    // Signals are taken synchronously by the main thread (sigwait below). The mask is set before
    // any thread starts (Broadcast, I/O, Asio's resolver threads), since threads inherit it: a
    // thread with SIGTERM unblocked would otherwise be killed by it, skipping the drain.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    auto c = ResolveConfig(o);
    if (!c) return Fail(c.error().message);
    base::InitLogging(c->log.level,
                      c->log.format == "text" ? base::LogFormat::kText : base::LogFormat::kJson);
    RaiseDescriptorLimit();
    auto store = OpenStore(*c);
    if (!store) return Fail(store.error().message);

    auto keys = (*store)->ListKeys();
    if (!keys) return Fail(keys.error().message);
    bool has_inference_key = false;
    for (const auto& k : *keys) has_inference_key |= (!k.management && !k.revoked);
    if (keys->empty()) {
        auto created = (*store)->CreateKey("default", false);
        if (!created) return Fail(created.error().message);
        std::cout << "Created your first API key (shown once, keep it): " << created->secret
                  << std::endl;
        has_inference_key = true;
    }
    if (!has_inference_key)
        spdlog::warn("no active inference key: create one with `beacon keys create`");

    broadcast::Broadcaster broadcaster(c->broadcast);
    if (c->broadcast.spool.enabled) {
        // Before any destination is added, so each resumes from its stored cursor.
        if (auto s = broadcaster.OpenSpool(SpoolOptionsFor(*c)); !s) {
            return Fail(s.error().message);
        }
    }
    for (const auto& d : c->broadcast.destinations) {
        if (auto s = broadcaster.Upsert(d); !s) return Fail(s.error().message);
    }
    if (c->broadcast.enabled) {
        spdlog::info("broadcast on: {} destination(s) from the config file",
                     c->broadcast.destinations.size());
    }

    auto secrets = admin::SecretBox::Open(c->data_dir);
    if (!secrets) return Fail(secrets.error().message);
    admin::ManagementApi management(**store, broadcaster, std::move(secrets.value()), c->broadcast);
    if (auto s = management.Load(); !s) return Fail(s.error().message);
    // Every destination is known now: the spool forgets the cursors of the others.
    broadcaster.Start();

    gateway::Gateway gw(*c, **store, &broadcaster);
    if (auto s = gw.Init(); !s) return Fail(s.error().message);
    gw.SetManagement(&management);
    gw.SetExtraMetrics(
        [&broadcaster](std::string& out) { admin::RenderBroadcastMetrics(broadcaster, out); });

    auto listen = config::ParseListen(c->server.listen);
    http::ServerOptions so;
    so.host = listen->first;
    so.port = listen->second;
    so.threads = c->server.threads > 0
                     ? c->server.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    so.max_body_bytes = c->server.max_body_bytes;
    so.max_header_bytes = c->server.max_header_bytes;
    so.idle_timeout = std::chrono::milliseconds(c->server.idle_timeout_ms);

    http::Server server(so, [&gw](http::Exchange& ex) { return gw.Handle(ex); });
    auto port = server.Start();
    if (!port) return Fail(port.error().message);
    const std::string url = "http://" + so.host + ":" + std::to_string(*port);
    std::cout << "listening on " << url << std::endl;
    spdlog::info("beacon listening on {} with {} threads, {} models, data in {}", url, so.threads,
                 c->models.size(), c->data_dir);

    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("received {}, draining (up to {} ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                 c->server.shutdown_timeout_ms);
    gw.SetDraining();
    server.StopAccepting();
    if (!server.WaitIdle(std::chrono::milliseconds(c->server.shutdown_timeout_ms))) {
        spdlog::warn("shutdown deadline passed with {} requests in flight", server.in_flight());
    }
    server.Stop();
    // What was answered is handed to Broadcast; give it the rest of the deadline to deliver.
    broadcaster.Shutdown(
        std::chrono::milliseconds(std::max(1000, c->server.shutdown_timeout_ms / 2)));
    spdlog::info("stopped");
    return 0;
}

int KeysCreate(const CommonOptions& o, const std::string& name, bool management) {
    auto c = ResolveConfig(o);
    if (!c) return Fail(c.error().message);
    auto store = OpenStore(*c);
    if (!store) return Fail(store.error().message);
    auto created = (*store)->CreateKey(name, management);
    if (!created) return Fail(created.error().message);
    std::cout << "Created " << (management ? "management" : "inference") << " key "
              << created->key.id << " (" << name << "). It is shown once:" << std::endl;
    std::cout << created->secret << std::endl;
    return 0;
}

int KeysList(const CommonOptions& o) {
    auto c = ResolveConfig(o);
    if (!c) return Fail(c.error().message);
    auto store = OpenStore(*c);
    if (!store) return Fail(store.error().message);
    auto keys = (*store)->ListKeys();
    if (!keys) return Fail(keys.error().message);
    std::cout << "ID                   NAME                 KIND        STATE    HINT" << std::endl;
    for (const auto& k : *keys) {
        std::printf("%-20s %-20s %-11s %-8s %s\n", k.id.c_str(), k.name.c_str(),
                    k.management ? "management" : "inference", k.revoked ? "revoked" : "active",
                    k.hint.c_str());
    }
    return 0;
}

int KeysRevoke(const CommonOptions& o, const std::string& which) {
    auto c = ResolveConfig(o);
    if (!c) return Fail(c.error().message);
    auto store = OpenStore(*c);
    if (!store) return Fail(store.error().message);
    if (auto s = (*store)->RevokeKey(which); !s) return Fail(s.error().message);
    std::cout << "Revoked " << which << std::endl;
    return 0;
}

void AddCommon(CLI::App* app, CommonOptions& o) {
    app->add_option("--config", o.config_path, "TOML configuration file (or BEACON_CONFIG)");
    app->add_option("--data-dir", o.data_dir, "data directory (or BEACON_DATA_DIR)");
}

}  // namespace

int Main(int argc, char** argv) {
    CLI::App app{"Beacon: a self-hosted, OpenRouter-compatible LLM gateway with Broadcast"};
    app.require_subcommand(1);
    CommonOptions o;

    auto* serve = app.add_subcommand("serve", "run the gateway");
    AddCommon(serve, o);
    serve->add_option("--listen", o.listen, "HOST:PORT to listen on (default 127.0.0.1:8080)");
    serve->add_option("--threads", o.threads, "I/O threads (default: one per core)");

    auto* keys = app.add_subcommand("keys", "manage API keys");
    keys->require_subcommand(1);
    std::string name;
    bool management = false;
    auto* create = keys->add_subcommand("create", "create a key and print it once");
    AddCommon(create, o);
    create->add_option("--name", name, "a label for the key")->required();
    create->add_flag("--management", management, "a management key (settings, not inference)");
    auto* list = keys->add_subcommand("list", "list keys (never their secrets)");
    AddCommon(list, o);
    std::string which;
    auto* revoke = keys->add_subcommand("revoke", "revoke a key by id or name");
    AddCommon(revoke, o);
    revoke->add_option("key", which, "key id or name")->required();

    auto* version = app.add_subcommand("version", "print the version");
    auto run_remote = AddRemoteCommands(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (*serve) return Serve(o);
    if (*create) return KeysCreate(o, name, management);
    if (*list) return KeysList(o);
    if (*revoke) return KeysRevoke(o, which);
    if (int code = run_remote(); code >= 0) return code;
    if (*version) {
        std::cout << "beacon 0.1.0" << std::endl;
        return 0;
    }
    return 1;
}

}  // namespace beacon::cli
