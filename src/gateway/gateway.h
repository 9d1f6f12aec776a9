// The inference and operations API: routing, authentication, and the chat completions flow
// (parse, route with fallback, answer whole or streamed, record). Runs on the server's I/O
// threads; every method that handles a request is a coroutine on the connection's thread.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "gateway/generation_log.h"
#include "gateway/metrics.h"
#include "http/exchange.h"
#include "providers/catalog.h"
#include "providers/provider.h"
#include "store/store.h"
#include "trace/trace_record.h"

namespace beacon::gateway {

// The management API (Settings > Observability), implemented in admin/. The gateway routes
// /api/v1/observability... to it after checking that the caller holds a management key.
class ManagementHandler {
  public:
    virtual ~ManagementHandler() = default;
    virtual boost::asio::awaitable<void> Handle(http::Exchange& exchange,
                                                const store::ApiKey& key) = 0;
};

class Gateway {
  public:
    // `sink` (may be null) receives a TraceRecord for every request that passed authentication.
    Gateway(const config::Config& config, store::Store& store, trace::RecordSink* sink);

    // Creates the providers; fails on a configuration error.
    Status Init();

    // The server's request handler.
    boost::asio::awaitable<void> Handle(http::Exchange& exchange);

    // Appended to GET /metrics after the request metrics (the Broadcast and spool series).
    void SetExtraMetrics(std::function<void(std::string&)> render) {
        extra_metrics_ = std::move(render);
    }

    // Set before the server starts; may stay null (no management API).
    void SetManagement(ManagementHandler* handler) { management_ = handler; }

    // While draining, /readyz answers 503 so that load balancers stop sending traffic.
    void SetDraining() { draining_ = true; }

    GenerationLog& generations() { return generations_; }

  private:
    // Routes one request; `model` receives the model of a chat completion (for metrics).
    boost::asio::awaitable<void> Dispatch(http::Exchange& exchange, std::string& model);
    boost::asio::awaitable<void> HandleChat(http::Exchange& exchange, const store::ApiKey& key,
                                            std::string& model);
    boost::asio::awaitable<void> HandleModels(http::Exchange& exchange);
    boost::asio::awaitable<void> HandleGeneration(http::Exchange& exchange,
                                                  const store::ApiKey& key);
    boost::asio::awaitable<void> HandleKey(http::Exchange& exchange, const store::ApiKey& key);

    config::Config config_;
    store::Store& store_;
    trace::RecordSink* sink_;
    ManagementHandler* management_ = nullptr;
    store::KeyCache keys_;
    providers::Catalog catalog_;
    std::map<std::string, std::unique_ptr<providers::Provider>> providers_;
    GenerationLog generations_{10000};
    std::atomic<bool> draining_{false};
    std::string models_json_;  // GET /api/v1/models, built once
    Metrics metrics_;
    std::function<void(std::string&)> extra_metrics_;

    struct KeyUsage {
        double cost = 0;
        int64_t requests = 0;
    };
    std::mutex usage_mu_;
    std::map<std::string, KeyUsage> usage_by_key_;

    friend class ChatCall;
};

}  // namespace beacon::gateway
