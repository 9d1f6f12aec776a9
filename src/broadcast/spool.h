// The Broadcast spool: finished trace records on disk, between the request path and the
// exporters, so that a Langfuse outage or a Beacon restart loses nothing.
//
// A SQLite database in WAL mode in its own file (`<data_dir>/spool.db`):
//   records(seq, created_ms, dests, bytes, body)  one row per record; `dests` lists the ids of
//                                                 the destinations that wanted it
//   cursors(destination, seq)                     per destination, every record up to `seq` is
//                                                 done (delivered, or dropped for a reason)
// Sequence numbers only grow, across restarts too. Rows at or below every cursor are deleted;
// past `max_bytes` the oldest rows are evicted whoever still wanted them.
//
// One writer (the Broadcaster's spool thread) and one reader (the Broadcast thread) use separate
// connections, so a catch-up read never waits for a group commit. A file that SQLite reports as
// damaged is renamed to `spool.db.corrupt-<unix ms>` (with its -wal and -shm) and a new spool is
// started: never fatal.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace beacon::store::sqlite {
class Database;
}

namespace beacon::broadcast {

enum class SpoolSync { kOff, kNormal, kFull };

struct SpoolOptions {
    std::string path;
    int64_t max_bytes = int64_t{1} << 30;
    SpoolSync sync = SpoolSync::kNormal;
};

// A destination list as stored: "\x1f" + ids joined by "\x1f" + "\x1f", so that "contains id"
// is one substring search that cannot match part of another id.
std::string JoinDestinations(const std::vector<std::string>& ids);
bool ListsDestination(std::string_view dests, std::string_view id);

// The size a row is accounted for against the bound: body, destination list, row overhead.
int64_t SpoolRowBytes(std::string_view body, std::string_view dests);

struct SpoolRow {
    int64_t seq = 0;
    int64_t created_ms = 0;
    std::string dests;
    int64_t bytes = 0;  // accounted size, as the writer gave it (default: body plus overhead)
    std::string body;   // empty when only the header was read
};

struct SpoolStats {
    std::string path;
    int64_t records = 0;
    int64_t bytes = 0;       // accounted bytes of the rows held
    int64_t file_bytes = 0;  // database + WAL on disk
    int64_t max_bytes = 0;
    int64_t stored = 0;             // rows written since start
    int64_t evicted = 0;            // rows evicted by the size bound since start
    int64_t corrupt_set_aside = 0;  // damaged files moved aside since start
    int64_t last_seq = 0;
};

class Spool {
  public:
    ~Spool();

    // Opens (or creates) the spool; a damaged file is set aside and a new one created. Fails
    // only when no spool can be created at all (unwritable directory, disk full).
    static Result<std::unique_ptr<Spool>> Open(SpoolOptions options);

    // --- writer side (one thread) ---

    struct NewRecord {
        int64_t created_ms = 0;
        std::string dests;
        std::string body;
        int64_t seq = 0;    // 0: the next after the last one
        int64_t bytes = 0;  // what readers account the record for; 0: its size here
    };
    struct CommitResult {
        int64_t first_seq = 0;          // of the appended rows (0 when none)
        int64_t last_seq = 0;           // highest sequence number committed so far
        std::vector<SpoolRow> evicted;  // headers of rows the size bound removed, oldest first
    };
    // In one transaction: appends `records` (with their sequence numbers, increasing and above
    // every earlier one, or numbered in order), stores the cursors of the destinations in
    // `cursors` (and forgets the others), deletes rows every one of them is done with, and
    // evicts the oldest rows past the size bound. `handled_upto`: the caller used sequence
    // numbers up to here (records it did not need to store), so they are never given again.
    Result<CommitResult> Commit(const std::vector<NewRecord>& records,
                                const std::map<std::string, int64_t>& cursors,
                                int64_t handled_upto = 0);

    // --- reader side (any thread; serialised internally) ---

    // Rows listing `destination` with after < seq <= upto, oldest first, at most `limit`.
    Result<std::vector<SpoolRow>> Read(int64_t after, int64_t upto, int limit,
                                       std::string_view destination);
    // Records listing `destination` with seq > after: count and accounted bytes.
    Result<std::pair<int64_t, int64_t>> Backlog(std::string_view destination, int64_t after);
    // The first sequence number created at or after `since_ms` (nullopt: none).
    Result<std::optional<int64_t>> FirstSeqSince(int64_t since_ms);

    // The cursor stored for `destination` when the spool was opened; given out once (a
    // destination removed and added again starts afresh).
    std::optional<int64_t> TakeStoredCursor(const std::string& destination);

    // Held by the writer from a commit until every destination has heard of its evictions, and
    // by every read: a reader never sees a row vanish before its destination counted it.
    std::mutex& read_gate() { return gate_mu_; }

    // How many damaged files were set aside since start (a destination reading from the spool
    // compares it to know that what it had not read yet is gone).
    int64_t corrupt_set_aside() const;
    int64_t last_seq() const;
    SpoolStats Stats() const;

  private:
    Spool() = default;
    Status OpenFresh();
    Status Prepare();
    Status SetAside(const std::string& why);
    void CheckpointIfLarge();

    SpoolOptions options_;
    std::mutex gate_mu_;  // see read_gate(); taken before reader_mu_
    std::unique_ptr<store::sqlite::Database> writer_;
    std::chrono::steady_clock::time_point last_reopen_{};
    std::unique_ptr<store::sqlite::Database> reader_;
    std::mutex reader_mu_;
    std::map<std::string, int64_t> stored_cursors_;

    mutable std::mutex stats_mu_;
    int64_t last_seq_ = 0;
    int64_t records_ = 0;
    int64_t bytes_ = 0;
    int64_t stored_ = 0;
    int64_t evicted_ = 0;
    int64_t corrupt_set_aside_ = 0;
};

}  // namespace beacon::broadcast
