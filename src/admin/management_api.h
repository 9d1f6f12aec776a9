// The management API behind Settings > Observability (docs/management_api.md): the Broadcast
// switch per workspace, Langfuse destinations (create, read, update, delete), Test Connection
// for unsaved and saved destinations, and "send a test trace". A destination is stored only
// after its Test Connection passed; its secret is stored sealed (secrets.h). Every change is
// applied to the running Broadcaster at once.
//
// Runs on the server's I/O threads. Mutations are serialised by a mutex that is never held
// across a co_await (the connection test runs before it is taken).
#pragma once

#include <mutex>

#include "admin/secrets.h"
#include "broadcast/broadcaster.h"
#include "gateway/gateway.h"
#include "store/store.h"

namespace beacon::admin {

inline constexpr int kMaxDestinationsPerType = 5;

class ManagementApi final : public gateway::ManagementHandler {
  public:
    ManagementApi(store::Store& store, broadcast::Broadcaster& broadcaster, SecretBox secrets,
                  const config::BroadcastConfig& options);

    // Applies the stored switches and destinations to the broadcaster (at start-up).
    Status Load();

    boost::asio::awaitable<void> Handle(http::Exchange& exchange,
                                        const store::ApiKey& key) override;

  private:
    boost::asio::awaitable<void> Observability(http::Exchange& ex, const store::ApiKey& key);
    boost::asio::awaitable<void> List(http::Exchange& ex, const store::ApiKey& key);
    boost::asio::awaitable<void> Create(http::Exchange& ex, const store::ApiKey& key);
    boost::asio::awaitable<void> TestUnsaved(http::Exchange& ex, const store::ApiKey& key);
    boost::asio::awaitable<void> Get(http::Exchange& ex, const store::StoredDestination& d);
    boost::asio::awaitable<void> Patch(http::Exchange& ex, store::StoredDestination d);
    boost::asio::awaitable<void> Delete(http::Exchange& ex, const store::StoredDestination& d);
    boost::asio::awaitable<void> TestSaved(http::Exchange& ex, const store::StoredDestination& d);
    boost::asio::awaitable<void> SendTestTrace(http::Exchange& ex,
                                               const store::StoredDestination& d);

    Result<config::DestinationConfig> ToConfig(const store::StoredDestination& d) const;
    std::string DestinationJson(const store::StoredDestination& d) const;
    // GET /api/v1/observability/spool: the spool and every destination's health.
    std::string SpoolJson(const store::ApiKey& key) const;
    // POST /api/v1/observability/spool/replay {"destination", "since"}.
    boost::asio::awaitable<void> Replay(http::Exchange& ex, const store::ApiKey& key);

    store::Store& store_;
    broadcast::Broadcaster& broadcaster_;
    SecretBox secrets_;
    const config::BroadcastConfig& options_;
    std::mutex mu_;
};

}  // namespace beacon::admin
