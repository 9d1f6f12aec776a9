// The Broadcast pipeline. The request path calls Submit(record), which never blocks: the
// record is handed to the spool writer (or, without a spool, straight to the destinations that
// want it) and the request goes on.
//
//   Submit --> each destination that wants the record, in memory (bounded) --> exporter coroutine
//         \-> writer queue (bounded) --> spool thread: a record still undelivered somewhere one
//              flush interval later is stored (SQLite, WAL, group commit); one every destination
//              delivered by then is not (the common case: the spool costs nothing while
//              destinations keep up)
//              a destination that fell behind (memory full, restart) reads from the spool
//
// One Broadcast thread runs an exporter coroutine per destination, so a slow destination never
// holds up another. An exporter batches (by count, estimated bytes, or flush interval), sends
// through its Destination, and applies the outcome: retry with exponential backoff and jitter
// (honouring Retry-After) for as long as the spool holds the records, split a refused batch to
// isolate the bad record, or drop and count. Each destination has a cursor in the spool (every
// record up to it is done); rows every destination is done with are deleted, and on start
// delivery resumes from the cursors (at-least-once: a batch in flight at a crash is sent again
// with the same ids).
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
#include <condition_variable>
#include <deque>
#include <map>
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
#include "broadcast/spool.h"
#include "config/config.h"
#include "trace/trace_record.h"

namespace beacon::broadcast {

struct DestinationHealth {
    std::string id;
    std::string name;
    std::string type;
    std::string workspace_id;  // empty: from the config file (every workspace)
    bool healthy = true;
    std::string unhealthy_reason;  // why the destination refuses us (401/403), when it does
    int64_t accepted = 0;          // records handed to this destination since start
    int64_t delivered = 0;         // records accepted by the destination
    int64_t failed = 0;            // export attempts that failed
    int64_t retried = 0;           // export attempts repeated
    int64_t backlog = 0;           // records waiting (memory and spool), in flight included
    int64_t backlog_bytes = 0;
    int64_t dropped_queue_full = 0;   // the writer queue (or, without a spool, memory) was full
    int64_t dropped_rejected = 0;     // refused by the destination (400/413, 207 item 4xx)
    int64_t dropped_spool_full = 0;   // evicted by the spool size bound before delivery
    int64_t dropped_corrupt = 0;      // unreadable in the spool, or lost with a damaged spool
    int64_t dropped_spool_error = 0;  // the spool write failed and memory had no room
    int64_t dropped_gave_up = 0;      // still failing after max_attempts (when set)
    int64_t dropped_shutdown = 0;     // without a spool: undelivered at the shutdown deadline
    int64_t last_success_unix_ms = 0;
    int64_t last_error_unix_ms = 0;
    std::string last_error;

    int64_t dropped() const {
        return dropped_queue_full + dropped_rejected + dropped_spool_full + dropped_corrupt +
               dropped_spool_error + dropped_gave_up + dropped_shutdown;
    }
};

class Broadcaster final : public trace::RecordSink {
  public:
    explicit Broadcaster(config::BroadcastConfig options);
    ~Broadcaster() override;

    // Opens the spool; call before the first Upsert so destinations resume from their stored
    // cursors. Without it records are held in memory only.
    Status OpenSpool(SpoolOptions options);

    // Adds a destination, or replaces the one with the same id. A replaced destination keeps
    // its records and counters; its next export uses the new settings (a batch waiting to be
    // retried is retried at once, e.g. after keys were fixed).
    Status Upsert(const config::DestinationConfig& config);
    void Upsert(std::unique_ptr<Destination> destination);
    // Removes a destination; what it still held is not sent.
    void Remove(const std::string& id);

    // The Broadcast switch of a workspace (off until turned on).
    void SetWorkspaceEnabled(const std::string& workspace_id, bool enabled);
    bool WorkspaceEnabled(const std::string& workspace_id) const;

    // Starts the Broadcast and spool threads.
    void Start();

    void Submit(trace::RecordPtr record) override;

    // Sends again the records still in the spool that were meant for destination `id` and
    // created at or after `since_unix_ms`. Returns how many will be sent again.
    Result<int64_t> Replay(const std::string& id, int64_t since_unix_ms);

    // Stops taking records, commits what waits for the spool, lets the exporters send until
    // `deadline`, then aborts what is left: with a spool it stays there for the next start.
    void Shutdown(std::chrono::milliseconds deadline);

    std::vector<DestinationHealth> Health() const;
    std::optional<DestinationHealth> Health(const std::string& id) const;
    // nullopt without a spool.
    std::optional<SpoolStats> SpoolStatus() const;

    const config::BroadcastConfig& options() const { return options_; }

    class Exporter;  // one per destination (broadcaster.cc)

  private:
    struct Pending {
        trace::RecordPtr record;
        std::vector<std::shared_ptr<Exporter>> wanting;
        int64_t seq = 0;
        int64_t created_ms = 0;
        std::chrono::steady_clock::time_point at;  // when submitted
        size_t bytes = 0;
    };

    void WriterLoop();
    void CommitGroup(std::vector<Pending> group, bool force_cursors);
    std::map<std::string, int64_t> Cursors() const;
    std::shared_ptr<Exporter> Find(const std::string& id) const;

    config::BroadcastConfig options_;
    std::unique_ptr<Spool> spool_;
    boost::asio::io_context ioc_{1};
    mutable std::shared_mutex mu_;  // guards exporters_ and enabled_workspaces_
    std::vector<std::shared_ptr<Exporter>> exporters_;
    std::set<std::string> enabled_workspaces_;
    std::thread thread_;
    std::atomic<bool> started_{false};
    std::atomic<bool> accepting_{false};

    // Orders commits (and, without a spool, Submit) against destinations being added, so a new
    // destination's starting position is exact.
    std::mutex commit_mu_;
    int64_t memory_seq_ = 0;  // without a spool (under commit_mu_)

    // The spool writer.
    std::mutex writer_mu_;
    std::condition_variable writer_cv_;
    std::deque<Pending> writer_queue_;  // in sequence order
    size_t writer_queue_bytes_ = 0;
    int64_t next_seq_ = 0;  // the last sequence number given (under writer_mu_)
    // Every record up to here is in the spool or was delivered wherever it was wanted (written
    // under commit_mu_).
    std::atomic<int64_t> durable_upto_{0};
    bool writer_stop_ = false;
    std::thread writer_;
    std::map<std::string, int64_t> saved_cursors_;  // spool thread only
};

}  // namespace beacon::broadcast
