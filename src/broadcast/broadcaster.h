// The Broadcast pipeline. The request path calls Submit(record), which never blocks: for each
// destination that accepts the record (enabled, key filter, sampling) the record is appended to
// that destination's bounded queue, or dropped and counted when the queue is full. One
// Broadcast thread runs an exporter coroutine per destination, so a slow destination never
// holds up another. An exporter batches (by count, estimated bytes, or flush interval), sends
// through its Destination, and applies the outcome: retry with exponential backoff and jitter
// (honouring Retry-After), split a refused batch to isolate the bad record, or drop and count.
//
// Durability comes later (a spool between Submit and the exporters); the queue is the seam.
//
// Destinations come from the config file (every workspace, under `broadcast.enabled`) and from
// the management API (one workspace, under that workspace's Broadcast switch); the latter are
// added, changed and removed while running.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "broadcast/destination.h"
#include "config/config.h"
#include "trace/trace_record.h"

namespace beacon::broadcast {

struct DestinationHealth {
    std::string id;
    std::string name;
    std::string type;
    bool healthy = true;
    int64_t queued = 0;     // waiting in memory now
    int64_t delivered = 0;  // records accepted by the destination
    int64_t failed = 0;     // export attempts that failed
    int64_t retried = 0;    // export attempts repeated
    int64_t dropped_queue_full = 0;
    int64_t dropped_rejected = 0;  // refused by the destination (400/413, 207 item 4xx)
    int64_t dropped_gave_up = 0;   // still failing after max_attempts
    int64_t dropped_shutdown = 0;  // undelivered when the shutdown deadline passed
    int64_t last_success_unix_ms = 0;
    int64_t last_error_unix_ms = 0;
    std::string last_error;
};

class Broadcaster final : public trace::RecordSink {
  public:
    explicit Broadcaster(config::BroadcastConfig options);
    ~Broadcaster() override;

    // Adds a destination, or replaces the one with the same id. A replaced destination keeps
    // its queue and counters; its next export uses the new settings (a batch waiting to be
    // retried is retried at once, e.g. after keys were fixed).
    Status Upsert(const config::DestinationConfig& config);
    void Upsert(std::unique_ptr<Destination> destination);
    // Removes a destination; what it still held is dropped.
    void Remove(const std::string& id);

    // The Broadcast switch of a workspace (off until turned on).
    void SetWorkspaceEnabled(const std::string& workspace_id, bool enabled);
    bool WorkspaceEnabled(const std::string& workspace_id) const;

    // Starts the Broadcast thread.
    void Start();

    void Submit(trace::RecordPtr record) override;

    // Stops taking records, lets the exporters send what they hold until `deadline`, then
    // aborts what is left (counted as dropped_shutdown) and joins the thread.
    void Shutdown(std::chrono::milliseconds deadline);

    std::vector<DestinationHealth> Health() const;
    std::optional<DestinationHealth> Health(const std::string& id) const;

    const config::BroadcastConfig& options() const { return options_; }

    class Exporter;  // one per destination (broadcaster.cc)

  private:
    config::BroadcastConfig options_;
    boost::asio::io_context ioc_{1};
    mutable std::shared_mutex mu_;  // guards exporters_ and enabled_workspaces_
    std::vector<std::shared_ptr<Exporter>> exporters_;
    std::set<std::string> enabled_workspaces_;
    std::thread thread_;
    std::atomic<bool> started_{false};
    std::atomic<bool> accepting_{false};
};

}  // namespace beacon::broadcast
