#include "broadcast/broadcaster.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <future>
#include <random>

#include "base/log.h"
#include "broadcast/registry.h"
#include "broadcast/sampling.h"
#include "trace/record_codec.h"

namespace beacon::broadcast {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr milliseconds kUnhealthyProbe{30000};
// Cursors are stored at least this often even when no record arrives.
constexpr milliseconds kCursorSaveInterval{1000};

int64_t NowUnixMs() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Rough size of a record once encoded: its content plus the attributes repeated per span.
size_t EstimatedBytes(const trace::TraceRecord& r) {
    size_t n = 3072 + r.input_json.size() + r.output_text.size() + r.reasoning.size();
    for (const auto& tc : r.tool_calls) n += tc.arguments.size() + tc.name.size() + 64;
    for (const auto& [k, v] : r.trace.extra) {
        n += 2 * (k.size() + 64 + (v.is_string() ? v.as_string().size() : 64));
    }
    return n + n / 4;  // JSON escaping inside attribute strings
}

// Logs the first occurrence and then every 1000th, so a flood cannot flood the log.
bool ShouldLog(int64_t count) { return count == 1 || count % 1000 == 0; }

}  // namespace

// One destination's view of the stream of records: which of them it still has to send, the
// records held in memory for it, the batch in flight, and its counters.
//
// Positions are sequence numbers (given at Submit, or a counter without a spool):
//   taken_       every record up to it was taken into a batch, or skipped as not wanted
//   handed_upto_ the last record handed to this destination (at Submit, before any commit)
//   known_upto_  every record up to it is in the spool, or was delivered by every destination
//                that wanted it (the writer does not store those)
// In "continuous" mode, mem_ holds exactly the wanted records in (taken_, handed_upto_]. When
// memory overflows (or after a restart) the exporter switches to "catch-up": it reads
// (taken_, known_upto_] from the spool, while mem_ keeps the newest records handed since it
// last overflowed; once the reads reach the first of them, it is continuous again.
class Broadcaster::Exporter : public std::enable_shared_from_this<Broadcaster::Exporter> {
  public:
    struct Item {
        int64_t seq = 0;
        trace::RecordPtr record;
        int64_t bytes = 0;
        bool durable = true;  // false: the spool write failed; only memory holds it
    };

    Exporter(asio::io_context& ioc, const config::BroadcastConfig& options, Spool* spool,
             int64_t start_after, int64_t known_upto, int64_t handed_upto)
        : options_(options),
          spool_(spool),
          wake_(ioc),
          flush_timer_(ioc),
          backoff_timer_(ioc),
          rng_(std::random_device{}()),
          taken_(start_after),
          handed_upto_(handed_upto),
          known_upto_(known_upto),
          mem_from_(handed_upto),
          continuous_(start_after >= handed_upto),
          spool_generation_(spool ? spool->corrupt_set_aside() : 0) {}

    // A copy: the destination may be replaced while other threads read it.
    config::DestinationConfig config() const {
        std::lock_guard lock(mu_);
        return config_;
    }
    const std::string& id() const { return id_; }

    // Whether a record belongs here (workspace, filter, sampling). Any thread.
    bool Wants(const trace::TraceRecord& record, bool global_enabled,
               const std::set<std::string>& enabled_workspaces) const {
        std::lock_guard lock(mu_);
        if (config_.workspace_id.empty()) {
            if (!global_enabled) return false;
        } else if (config_.workspace_id != record.workspace_id ||
                   !enabled_workspaces.count(config_.workspace_id)) {
            return false;
        }
        return Accepts(config_, record);
    }

    // Before the exporter runs: the records still waiting in the spool at start.
    void SetBacklog(int64_t records, int64_t bytes) {
        std::lock_guard lock(mu_);
        backlog_ = records;
        backlog_bytes_ = bytes;
    }

    // Broadcast thread (or before Start): the next export goes through `replacement`; a
    // pending retry is cut short so that fixed settings take effect at once.
    void Replace(std::shared_ptr<Destination> replacement) {
        {
            std::lock_guard lock(mu_);
            config_ = replacement->config();
            if (id_.empty()) id_ = config_.id;  // set before other threads see the exporter
            healthy_ = true;
            unhealthy_reason_.clear();
        }
        dest_ = std::move(replacement);
        backoff_timer_.cancel();
    }

    // Any thread, in sequence order: a record for this destination, as soon as it is submitted.
    // The spool writer stores it later unless this and every other destination that wants it
    // delivered it by then.
    void Handed(Item item) {
        bool wake = false, batch_full = false;
        {
            std::lock_guard lock(mu_);
            ++accepted_;
            const bool room = mem_.size() < static_cast<size_t>(options_.queue_capacity) &&
                              mem_bytes_ + item.bytes <= options_.max_queue_bytes;
            if (!room && !spool_) {
                ++dropped_queue_full_;
                if (ShouldLog(dropped_queue_full_)) {
                    spdlog::warn(
                        "broadcast: {} queue full ({} records, {} bytes); dropped {} so far",
                        config_.name, mem_.size(), mem_bytes_, dropped_queue_full_);
                }
                handed_upto_ = item.seq;
                return;
            }
            backlog_ += 1;
            backlog_bytes_ += item.bytes;
            if (room) {
                mem_bytes_ += item.bytes;
                handed_upto_ = item.seq;
                mem_.push_back(std::move(item));
            } else {
                // The spool will have it (the writer stores what is not delivered): read it back
                // from there. Memory starts again after it, so what it holds stays contiguous.
                if (continuous_) {
                    continuous_ = false;
                    taken_ = Position();
                    spdlog::info("broadcast: {} is behind; reading from the spool", config_.name);
                }
                ClearMemory();
                handed_upto_ = item.seq;
                mem_from_ = item.seq;
            }
            if (waiting_ && continuous_) {
                waiting_ = false;
                wake = true;
            }
            if (filling_ && (mem_.size() >= static_cast<size_t>(options_.max_batch_records) ||
                             mem_bytes_ >= options_.max_batch_bytes)) {
                filling_ = false;
                batch_full = true;
            }
        }
        if (wake || batch_full) {
            asio::post(wake_.get_executor(), [weak = weak_from_this(), wake, batch_full] {
                auto self = weak.lock();
                if (!self) return;
                if (wake) self->wake_.cancel();
                if (batch_full) self->flush_timer_.cancel();
            });
        }
    }

    // Any thread: every record up to `upto` is in the spool or needs no reading back.
    void Committed(int64_t upto) {
        bool wake = false;
        {
            std::lock_guard lock(mu_);
            if (upto <= known_upto_) return;
            known_upto_ = upto;
            if (waiting_ && !continuous_) {
                waiting_ = false;
                wake = true;
            }
        }
        if (wake) {
            asio::post(wake_.get_executor(), [weak = weak_from_this()] {
                if (auto self = weak.lock()) self->wake_.cancel();
            });
        }
    }

    // Any thread: the spool write of these records (sequence number, bytes) failed; only
    // memory holds them now.
    void NotStored(const std::vector<std::pair<int64_t, int64_t>>& records) {
        std::lock_guard lock(mu_);
        for (const auto& [seq, bytes] : records) {
            auto it = std::lower_bound(mem_.begin(), mem_.end(), seq,
                                       [](const Item& i, int64_t s) { return i.seq < s; });
            if (it != mem_.end() && it->seq == seq) {
                it->durable = false;
            } else if (!continuous_ && seq > taken_) {
                // Dropped from memory for the spool to hold it, and the spool does not.
                Forget(dropped_spool_error_, bytes);
            }
        }
    }

    // Any thread: the spool's size bound removed every row up to `upto`; `rows` are those of
    // them that listed this destination.
    void Evicted(const std::vector<const SpoolRow*>& rows, int64_t upto) {
        std::lock_guard lock(mu_);
        for (const SpoolRow* row : rows) {
            // Rows in the batch in flight are counted by the batch (it stops resending them).
            if (row->seq > taken_) Forget(dropped_spool_full_, row->bytes);
        }
        while (!mem_.empty() && mem_.front().seq <= upto) {
            // Held in memory only (the spool write failed): the bound takes it too.
            if (!mem_.front().durable) Forget(dropped_spool_full_, mem_.front().bytes);
            mem_bytes_ -= mem_.front().bytes;
            mem_.pop_front();
        }
        taken_ = std::max(taken_, upto);
        mem_from_ = std::max(mem_from_, upto);
        evicted_upto_ = std::max(evicted_upto_, upto);
        if (!rows.empty() && ShouldLog(dropped_spool_full_)) {
            spdlog::warn("broadcast: spool full; {} lost {} undelivered record(s) so far",
                         config_.name, dropped_spool_full_);
        }
    }

    // Any thread: every record up to the returned sequence number is done with.
    int64_t Cursor() const {
        std::lock_guard lock(mu_);
        int64_t c = Position();
        if (inflight_first_) c = std::min(c, inflight_first_ - 1);
        return c;
    }

    // Broadcast thread: send again what the spool holds from `from_seq` on.
    void Rewind(int64_t from_seq, int64_t records, int64_t bytes) {
        std::lock_guard lock(mu_);
        taken_ = std::min(taken_, from_seq - 1);
        continuous_ = false;
        ClearMemory();
        mem_from_ = handed_upto_;
        backlog_ += records;
        backlog_bytes_ += bytes;
        waiting_ = false;
        wake_.cancel();
    }

    // Any thread: the spool file was damaged and replaced; what this destination had not read
    // from it yet is gone (counted), what it holds in memory or in flight still goes.
    void SpoolReplaced(int64_t generation, int64_t upto) {
        std::lock_guard lock(mu_);
        if (generation == spool_generation_) return;
        spool_generation_ = generation;
        if (continuous_) return;  // everything it still needs is in memory
        // What it holds goes on; the rest of its backlog was to be read from the old file.
        // (Records handed while it was behind and not stored yet are counted too, although the
        // new file gets them: a damaged spool errs on the side of reporting loss.)
        const int64_t held = inflight_n_ + static_cast<int64_t>(mem_.size());
        const int64_t lost = std::max<int64_t>(0, backlog_ - held);
        dropped_corrupt_ += lost;
        backlog_ = held;
        backlog_bytes_ = std::min(backlog_bytes_, inflight_bytes_ + mem_bytes_);
        taken_ = std::max(taken_, std::min(upto, mem_from_));
        if (taken_ >= mem_from_) Resume();
        if (lost) {
            spdlog::error("broadcast: {} lost {} record(s) with the damaged spool", config_.name,
                          lost);
        }
    }

    int64_t taken() const {
        std::lock_guard lock(mu_);
        return Position();
    }

    // Broadcast thread from here on.
    asio::awaitable<void> Run() {
        for (;;) {
            if (aborted_) break;
            bool has_work = false;
            bool fill = false;
            {
                std::lock_guard lock(mu_);
                if (!continuous_ && taken_ >= mem_from_) Resume();
                has_work = continuous_ ? !mem_.empty() : taken_ < known_upto_;
                if (!has_work && stopping_) break;
                if (!has_work) waiting_ = true;
                fill = continuous_ &&
                       mem_.size() < static_cast<size_t>(options_.max_batch_records) &&
                       mem_bytes_ < options_.max_batch_bytes;
                filling_ = fill && !stopping_;
            }
            if (!has_work) {
                wake_.expires_at(Clock::time_point::max());
                co_await wake_.async_wait(kTuple);
                continue;
            }
            if (!stopping_ && fill) {
                // Let a batch fill for at most one flush interval (Handed cuts it short once
                // the batch is full).
                flush_timer_.expires_after(milliseconds(options_.flush_interval_ms));
                co_await flush_timer_.async_wait(kTuple);
                std::lock_guard lock(mu_);
                filling_ = false;
            }
            bool read_failed = false;
            auto batch = TakeBatch(read_failed);
            if (read_failed) {
                // Not read is not lost: try again shortly (the writer may be replacing a
                // damaged file meanwhile).
                backoff_timer_.expires_after(milliseconds(1000));
                co_await backoff_timer_.async_wait(kTuple);
                continue;
            }
            if (batch.empty()) {
                // Let the other destinations and posted work run between two reads.
                co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
                continue;
            }
            co_await Deliver(std::move(batch));
            if (aborted_) break;  // the batch stays in the spool: the cursor keeps it
            std::lock_guard lock(mu_);
            inflight_first_ = 0;
            inflight_n_ = 0;
            inflight_bytes_ = 0;
        }
        {
            std::lock_guard lock(mu_);
            waiting_ = false;
        }
        finished_ = true;
    }

    void Stop(Clock::time_point deadline) {
        stopping_ = true;
        deadline_ = deadline;
        wake_.cancel();
        flush_timer_.cancel();
    }

    // Past the deadline: abort the I/O in flight. Without a spool what never left is counted;
    // with one it stays there (the cursor does not move past it).
    void Abort() {
        aborted_ = true;
        cancel_.Cancel();
        backoff_timer_.cancel();
        flush_timer_.cancel();
        wake_.cancel();
        std::lock_guard lock(mu_);
        if (!spool_) {
            for (const auto& item : mem_) Forget(dropped_shutdown_, item.bytes);
            mem_.clear();
            mem_bytes_ = 0;
            taken_ = std::max(handed_upto_, known_upto_);  // nothing to read back: no spool
            return;
        }
        taken_ = Position();
        continuous_ = false;
        ClearMemory();
        mem_from_ = handed_upto_;
    }

    bool finished() const { return finished_; }

    DestinationHealth Health() const {
        std::lock_guard lock(mu_);
        DestinationHealth h;
        h.id = config_.id;
        h.name = config_.name;
        h.type = config_.type;
        h.workspace_id = config_.workspace_id;
        h.healthy = healthy_;
        h.unhealthy_reason = unhealthy_reason_;
        h.accepted = accepted_;
        h.delivered = delivered_;
        h.failed = failed_;
        h.retried = retried_;
        h.backlog = std::max<int64_t>(0, backlog_);
        h.backlog_bytes = std::max<int64_t>(0, backlog_bytes_);
        h.dropped_queue_full = dropped_queue_full_;
        h.dropped_rejected = dropped_rejected_;
        h.dropped_spool_full = dropped_spool_full_;
        h.dropped_corrupt = dropped_corrupt_;
        h.dropped_spool_error = dropped_spool_error_;
        h.dropped_gave_up = dropped_gave_up_;
        h.dropped_shutdown = dropped_shutdown_;
        h.last_success_unix_ms = last_success_ms_;
        h.last_error_unix_ms = last_error_ms_;
        h.last_error = last_error_;
        return h;
    }

    // Counts records queued for the spool writer that did not fit.
    void CountQueueFull() {
        std::lock_guard lock(mu_);
        ++dropped_queue_full_;
        if (ShouldLog(dropped_queue_full_)) {
            spdlog::warn("broadcast: spool writer queue full; {} dropped {} record(s) so far",
                         config_.name, dropped_queue_full_);
        }
    }

  private:
    // The next batch, marked in flight (under the same lock, so the cursor never passes it).
    std::vector<Item> TakeBatch(bool& read_failed) {
        std::vector<Item> batch;
        int64_t bytes = 0;
        const auto max_records = static_cast<size_t>(options_.max_batch_records);
        const int64_t max_bytes = options_.max_batch_bytes;
        int64_t after = 0, upto = 0;
        {
            std::lock_guard lock(mu_);
            if (continuous_) {
                while (!mem_.empty() && batch.size() < max_records) {
                    const int64_t b = mem_.front().bytes;
                    if (!batch.empty() && bytes + b > max_bytes) break;
                    bytes += b;
                    mem_bytes_ -= b;
                    batch.push_back(std::move(mem_.front()));
                    mem_.pop_front();
                }
                if (!batch.empty()) taken_ = std::max(taken_, batch.back().seq);
                MarkInFlight(batch, bytes);
                return batch;
            }
            after = taken_;
            upto = known_upto_;
        }
        // Catch-up: the next rows for this destination from the spool.
        const int limit = options_.max_batch_records;
        auto rows = spool_->Read(after, upto, limit, id_);
        std::lock_guard lock(mu_);
        if (!rows) {
            ++read_failures_;
            if (ShouldLog(read_failures_)) {
                spdlog::error("broadcast: {} cannot read the spool: {}", config_.name,
                              rows.error().message);
            }
            read_failed = true;
            return batch;
        }
        // Fewer rows than asked: every row for us up to `upto` was read.
        int64_t reached = static_cast<int>(rows->size()) < limit ? upto : rows->back().seq;
        for (auto& row : *rows) {
            if (row.seq <= taken_ || row.seq <= evicted_upto_) continue;  // counted when evicted
            if (!batch.empty() && bytes + row.bytes > max_bytes) {
                reached = row.seq - 1;
                break;
            }
            auto decoded = trace::DecodeRecord(row.body);
            if (!decoded) {
                Forget(dropped_corrupt_, row.bytes);
                spdlog::error("broadcast: {} skipped spool record {}: {}", config_.name, row.seq,
                              decoded.error().message);
                continue;
            }
            bytes += row.bytes;
            batch.push_back(Item{
                row.seq, std::make_shared<const trace::TraceRecord>(std::move(decoded.value())),
                row.bytes});
        }
        taken_ = std::max(taken_, reached);
        if (taken_ >= mem_from_) Resume();
        MarkInFlight(batch, bytes);
        return batch;
    }

    void MarkInFlight(const std::vector<Item>& batch, int64_t bytes) {
        if (batch.empty()) return;
        inflight_first_ = batch.front().seq;
        inflight_n_ = static_cast<int64_t>(batch.size());
        inflight_bytes_ = bytes;
    }

    // Under mu_: one record of `bytes` leaves the backlog, counted under `reason`.
    void Forget(int64_t& reason, int64_t bytes) {
        ++reason;
        backlog_ -= 1;
        backlog_bytes_ -= bytes;
    }

    // Under mu_: every record up to here was taken or is not wanted (the batch in flight aside).
    int64_t Position() const {
        if (!continuous_) return taken_;
        return mem_.empty() ? std::max(handed_upto_, known_upto_) : mem_.front().seq - 1;
    }

    // Under mu_, in catch-up once the reads reached what memory holds: memory has every record
    // after taken_, so delivery goes on from there (records already read are dropped from it).
    void Resume() {
        while (!mem_.empty() && mem_.front().seq <= taken_) {
            mem_bytes_ -= mem_.front().bytes;
            mem_.pop_front();
        }
        continuous_ = true;
        spdlog::info("broadcast: {} caught up with the spool", config_.name);
    }

    // Under mu_: empties memory before reading from the spool again; records only memory held
    // (the spool write failed) are lost and counted.
    void ClearMemory() {
        for (const auto& item : mem_) {
            if (!item.durable) Forget(dropped_spool_error_, item.bytes);
        }
        mem_.clear();
        mem_bytes_ = 0;
    }

    milliseconds Backoff(int attempt) {
        const int64_t base = options_.retry_base_ms;
        const int64_t cap = options_.retry_max_ms;
        int64_t d = base << std::min(attempt - 1, 20);
        d = std::min(d, cap);
        std::uniform_int_distribution<int64_t> jitter(d / 2, d);  // "equal jitter"
        return milliseconds(jitter(rng_));
    }

    // `items` are done with (delivered or dropped): counted in `counter`, out of the backlog.
    void Done(int64_t& counter, const std::vector<Item>& items) {
        std::lock_guard lock(mu_);
        for (const auto& i : items) Forget(counter, i.bytes);
    }

    void NoteError(const ExportOutcome& o) {
        std::lock_guard lock(mu_);
        ++failed_;
        last_error_ = o.reason;
        last_error_ms_ = NowUnixMs();
        if (o.unhealthy) {
            healthy_ = false;
            unhealthy_reason_ = o.reason;
        }
    }

    // Removes from `batch` what the spool's size bound evicted meanwhile (counted here).
    void DropEvicted(std::vector<Item>& batch) {
        std::vector<Item> gone;
        {
            std::lock_guard lock(mu_);
            if (batch.empty() || batch.front().seq > evicted_upto_) return;
            auto it = batch.begin();
            while (it != batch.end() && it->seq <= evicted_upto_) ++it;
            gone.assign(std::make_move_iterator(batch.begin()), std::make_move_iterator(it));
            batch.erase(batch.begin(), it);
        }
        Done(dropped_spool_full_, gone);
    }

    static std::vector<trace::RecordPtr> Records(const std::vector<Item>& batch) {
        std::vector<trace::RecordPtr> out;
        out.reserve(batch.size());
        for (const auto& i : batch) out.push_back(i.record);
        return out;
    }

    asio::awaitable<void> Deliver(std::vector<Item> batch) {
        int attempt = 0;
        for (;;) {
            if (spool_) DropEvicted(batch);
            if (batch.empty()) co_return;
            if (aborted_) {
                if (!spool_) Done(dropped_shutdown_, batch);  // with a spool it stays there
                co_return;
            }
            std::shared_ptr<Destination> dest = dest_;  // stays alive if replaced meanwhile
            const auto records = Records(batch);
            ExportOutcome outcome = co_await dest->Export(records, cancel_);
            if (aborted_) {
                if (!spool_) Done(dropped_shutdown_, batch);
                co_return;
            }
            switch (outcome.kind) {
                case ExportOutcome::Kind::kOk: {
                    Done(delivered_, batch);
                    std::lock_guard lock(mu_);
                    healthy_ = true;
                    unhealthy_reason_.clear();
                    last_success_ms_ = NowUnixMs();
                    co_return;
                }
                case ExportOutcome::Kind::kDrop:
                    if ((outcome.http_status == 400 || outcome.http_status == 413) &&
                        batch.size() > 1) {
                        // Isolate the record the destination refuses; the others still go.
                        const auto half = static_cast<std::ptrdiff_t>(batch.size() / 2);
                        std::vector<Item> left(std::make_move_iterator(batch.begin()),
                                               std::make_move_iterator(batch.begin() + half));
                        std::vector<Item> right(std::make_move_iterator(batch.begin() + half),
                                                std::make_move_iterator(batch.end()));
                        co_await Deliver(std::move(left));
                        co_await Deliver(std::move(right));
                        co_return;
                    }
                    NoteError(outcome);
                    spdlog::warn("broadcast: {} refused {} record(s) ({}), dropped: {}",
                                 config().name, batch.size(),
                                 batch.size() == 1 ? batch[0].record->generation_id : "batch",
                                 outcome.reason);
                    Done(dropped_rejected_, batch);
                    co_return;
                case ExportOutcome::Kind::kPartial: {
                    std::vector<bool> again_at(batch.size(), false);
                    for (size_t i : outcome.retry) {
                        if (i < batch.size()) again_at[i] = true;
                    }
                    std::vector<Item> again, settled;
                    for (size_t i = 0; i < batch.size(); ++i) {
                        (again_at[i] ? again : settled).push_back(std::move(batch[i]));
                    }
                    const size_t dropped = std::min(outcome.dropped, settled.size());
                    std::vector<Item> refused(
                        std::make_move_iterator(settled.end() - static_cast<long>(dropped)),
                        std::make_move_iterator(settled.end()));
                    settled.resize(settled.size() - dropped);
                    Done(delivered_, settled);
                    if (!refused.empty()) {
                        spdlog::warn("broadcast: {} refused {} record(s), dropped: {}",
                                     config().name, refused.size(), outcome.reason);
                        Done(dropped_rejected_, refused);
                    }
                    if (again.empty()) co_return;
                    NoteError(outcome);
                    batch = std::move(again);
                    break;
                }
                case ExportOutcome::Kind::kRetry:
                    NoteError(outcome);
                    break;
            }
            // Refused credentials are not the records' fault: keep them and probe slowly until
            // the keys are fixed (Replace cuts the wait short) or shutdown.
            if (!outcome.unhealthy) ++attempt;
            if (options_.max_attempts > 0 && attempt >= options_.max_attempts) {
                spdlog::error(
                    "broadcast: {} still failing after {} attempts ({}); dropped {} record(s)",
                    config().name, attempt, outcome.reason, batch.size());
                Done(dropped_gave_up_, batch);
                co_return;
            }
            milliseconds delay = outcome.unhealthy ? kUnhealthyProbe : Backoff(attempt);
            if (outcome.retry_after) delay = std::max(*outcome.retry_after, milliseconds(1));
            spdlog::warn("broadcast: {} export failed ({}); retry {} in {} ms", config().name,
                         outcome.reason, attempt, delay.count());
            {
                std::lock_guard lock(mu_);
                ++retried_;
            }
            if (stopping_ && Clock::now() + delay > deadline_) {
                if (!spool_) Done(dropped_shutdown_, batch);
                aborted_ = true;  // the spool keeps the rest for the next start
                co_return;
            }
            backoff_timer_.expires_after(delay);
            co_await backoff_timer_.async_wait(kTuple);
        }
    }

    const config::BroadcastConfig& options_;
    Spool* spool_;                       // null: memory only
    std::shared_ptr<Destination> dest_;  // Broadcast thread only
    std::string id_;                     // fixed once set (Replace keeps the id)
    config::DestinationConfig config_;   // guarded by mu_
    asio::steady_timer wake_;
    asio::steady_timer flush_timer_;
    asio::steady_timer backoff_timer_;
    base::Canceller cancel_;
    std::mt19937_64 rng_;

    mutable std::mutex mu_;
    std::deque<Item> mem_;
    int64_t mem_bytes_ = 0;
    int64_t taken_ = 0;
    int64_t handed_upto_ = 0;
    int64_t known_upto_ = 0;
    int64_t mem_from_ = 0;  // catch-up: mem_ holds every wanted record in (mem_from_, handed_upto_]
    bool filling_ = false;  // Run waits for a batch to fill
    int64_t evicted_upto_ = 0;
    int64_t inflight_first_ = 0, inflight_n_ = 0, inflight_bytes_ = 0;
    int64_t read_failures_ = 0;
    bool continuous_ = true;
    int64_t spool_generation_ = 0;  // damaged spool files set aside, as last seen
    bool waiting_ = false;
    int64_t backlog_ = 0, backlog_bytes_ = 0;
    int64_t accepted_ = 0, delivered_ = 0, failed_ = 0, retried_ = 0;
    int64_t dropped_queue_full_ = 0, dropped_rejected_ = 0, dropped_spool_full_ = 0,
            dropped_corrupt_ = 0, dropped_gave_up_ = 0, dropped_shutdown_ = 0,
            dropped_spool_error_ = 0;
    int64_t last_success_ms_ = 0, last_error_ms_ = 0;
    std::string last_error_;
    std::string unhealthy_reason_;
    bool healthy_ = true;

    // Broadcast thread only.
    bool stopping_ = false;
    bool aborted_ = false;
    bool finished_ = false;
    Clock::time_point deadline_ = Clock::time_point::max();
};

namespace {

// Keeps the exporter alive for as long as its loop runs, even after Remove.
asio::awaitable<void> RunExporter(std::shared_ptr<Broadcaster::Exporter> exporter) {
    co_await exporter->Run();
}

}  // namespace

Broadcaster::Broadcaster(config::BroadcastConfig options) : options_(std::move(options)) {}

Broadcaster::~Broadcaster() { Shutdown(milliseconds(0)); }

Status Broadcaster::OpenSpool(SpoolOptions options) {
    auto spool = Spool::Open(std::move(options));
    if (!spool) return spool.error();
    std::lock_guard commit(commit_mu_);
    spool_ = std::move(spool.value());
    std::lock_guard writer(writer_mu_);
    next_seq_ = spool_->last_seq();
    durable_upto_ = next_seq_;
    return Status::Ok();
}

Status Broadcaster::Upsert(const config::DestinationConfig& config) {
    auto d = CreateDestination(config);
    if (!d) return d.error();
    Upsert(std::move(d.value()));
    return Status::Ok();
}

void Broadcaster::Upsert(std::unique_ptr<Destination> destination) {
    std::shared_ptr<Destination> shared = std::move(destination);
    const std::string id = shared->config().id;
    // commit_mu_ keeps the spool still while the new destination's position is worked out.
    // Lock order: commit_mu_, then the spool's read gate, then mu_ (as CommitGroup takes them).
    std::lock_guard commit(commit_mu_);
    {
        std::unique_lock lock(mu_);
        for (auto& e : exporters_) {
            if (e->id() != id) continue;
            if (started_) {
                asio::post(ioc_, [e, shared] { e->Replace(shared); });
            } else {
                e->Replace(shared);
            }
            return;
        }
    }
    // A new destination starts after what was already submitted, or from its stored cursor.
    // writer_mu_ holds Submit back until the exporter is listed, so it misses no record.
    std::lock_guard writer(writer_mu_);
    const int64_t handed = spool_ ? next_seq_ : memory_seq_;
    const int64_t known = spool_ ? durable_upto_.load() : memory_seq_;
    int64_t start = handed;
    if (spool_) {
        if (auto c = spool_->TakeStoredCursor(id)) start = std::min(*c, handed);
    }
    auto exporter = std::make_shared<Exporter>(ioc_, options_, spool_.get(), start, known, handed);
    exporter->Replace(shared);
    if (spool_ && start < known) {
        if (auto b = spool_->Backlog(id, start)) {
            exporter->SetBacklog(b->first, b->second);
            if (b->first > 0) {
                spdlog::info("broadcast: {} resumes with {} record(s) in the spool",
                             shared->config().name, b->first);
            }
        }
    }
    std::unique_lock lock(mu_);
    exporters_.push_back(exporter);
    if (started_) asio::co_spawn(ioc_, RunExporter(exporter), asio::detached);
}

void Broadcaster::Remove(const std::string& id) {
    std::unique_lock lock(mu_);
    for (auto it = exporters_.begin(); it != exporters_.end(); ++it) {
        if ((*it)->id() != id) continue;
        auto e = *it;
        exporters_.erase(it);
        if (started_) {
            asio::post(ioc_, [e] {
                e->Stop(Clock::now());
                e->Abort();
            });
        }
        return;
    }
}

void Broadcaster::SetWorkspaceEnabled(const std::string& workspace_id, bool enabled) {
    std::unique_lock lock(mu_);
    if (enabled) {
        enabled_workspaces_.insert(workspace_id);
    } else {
        enabled_workspaces_.erase(workspace_id);
    }
}

bool Broadcaster::WorkspaceEnabled(const std::string& workspace_id) const {
    std::shared_lock lock(mu_);
    return enabled_workspaces_.count(workspace_id) > 0;
}

void Broadcaster::Start() {
    std::unique_lock lock(mu_);
    if (started_) return;
    for (auto& e : exporters_) asio::co_spawn(ioc_, RunExporter(e), asio::detached);
    started_ = true;
    accepting_ = true;
    thread_ = std::thread([this] {
        base::NameThisThread("beacon-export");
        auto guard = asio::make_work_guard(ioc_);
        ioc_.run();
    });
    if (spool_)
        writer_ = std::thread([this] {
            base::NameThisThread("beacon-spool");
            WriterLoop();
        });
}

void Broadcaster::Submit(trace::RecordPtr record) {
    if (!accepting_) return;
    Pending p;
    {
        std::shared_lock lock(mu_);
        for (auto& e : exporters_) {
            if (e->Wants(*record, options_.enabled, enabled_workspaces_)) p.wanting.push_back(e);
        }
    }
    if (p.wanting.empty()) return;
    p.bytes = EstimatedBytes(*record);
    p.record = std::move(record);
    const auto bytes = static_cast<int64_t>(p.bytes);
    if (!spool_) {
        // Memory only: hand the record to its destinations now, in sequence order.
        std::lock_guard commit(commit_mu_);
        const int64_t seq = ++memory_seq_;
        for (auto& e : p.wanting) {
            e->Handed({seq, p.record, bytes});
            e->Committed(seq);
        }
        return;
    }
    p.created_ms = NowUnixMs();
    p.at = Clock::now();
    // Each destination gets the record now; the spool writer stores it one flush interval
    // later unless every destination that wanted it delivered it by then.
    std::unique_lock lock(writer_mu_);
    if (writer_queue_.size() >= static_cast<size_t>(options_.queue_capacity) ||
        writer_queue_bytes_ + p.bytes > static_cast<size_t>(options_.max_queue_bytes)) {
        lock.unlock();
        for (auto& e : p.wanting) e->CountQueueFull();
        return;
    }
    p.seq = ++next_seq_;
    for (auto& e : p.wanting) e->Handed({p.seq, p.record, bytes});
    writer_queue_bytes_ += p.bytes;
    writer_queue_.push_back(std::move(p));
    if (writer_queue_.size() == 1) writer_cv_.notify_one();
}

std::map<std::string, int64_t> Broadcaster::Cursors() const {
    std::shared_lock lock(mu_);
    std::map<std::string, int64_t> out;
    for (const auto& e : exporters_) out[e->id()] = e->Cursor();
    return out;
}

std::shared_ptr<Broadcaster::Exporter> Broadcaster::Find(const std::string& id) const {
    std::shared_lock lock(mu_);
    for (const auto& e : exporters_) {
        if (e->id() == id) return e;
    }
    return nullptr;
}

void Broadcaster::WriterLoop() {
    const milliseconds flush(options_.spool.flush_interval_ms);
    auto last_save = Clock::now();
    for (;;) {
        std::vector<Pending> group;
        bool stop = false;
        {
            std::unique_lock lock(writer_mu_);
            writer_cv_.wait_for(lock, kCursorSaveInterval,
                                [&] { return !writer_queue_.empty() || writer_stop_; });
            // Wait until the oldest record is one flush interval old, then take every record at
            // least half an interval old: each gets that long to be delivered without being
            // stored, and groups are at least half an interval apart.
            if (!writer_queue_.empty()) {
                writer_cv_.wait_until(lock, writer_queue_.front().at + flush,
                                      [&] { return writer_stop_; });
            }
            stop = writer_stop_;
            const auto cut = Clock::now() - flush / 2;
            size_t n = 0;
            while (n < writer_queue_.size() && (stop || writer_queue_[n].at <= cut)) {
                writer_queue_bytes_ -= writer_queue_[n].bytes;
                ++n;
            }
            group.assign(std::make_move_iterator(writer_queue_.begin()),
                         std::make_move_iterator(writer_queue_.begin() + static_cast<long>(n)));
            writer_queue_.erase(writer_queue_.begin(),
                                writer_queue_.begin() + static_cast<long>(n));
        }
        const bool save = Clock::now() - last_save >= kCursorSaveInterval;
        if (!group.empty() || save || stop) {
            CommitGroup(std::move(group), save || stop);
            last_save = Clock::now();
        }
        if (stop) {
            std::lock_guard lock(writer_mu_);
            if (writer_queue_.empty()) return;
        }
    }
}

void Broadcaster::CommitGroup(std::vector<Pending> group, bool force_cursors) {
    // A record every destination that wanted it has delivered needs no storing. Cursors only
    // move forward, so a look taken now can only miss deliveries, never invent one.
    const auto delivered = Cursors();
    std::vector<Spool::NewRecord> rows;
    std::vector<const Pending*> stored;
    for (const auto& p : group) {
        // Under load nearly every record is delivered by now: decide before building anything.
        const bool done = std::none_of(p.wanting.begin(), p.wanting.end(), [&](const auto& e) {
            auto it = delivered.find(e->id());
            return it != delivered.end() && it->second < p.seq;  // removed: done
        });
        if (done) continue;
        std::vector<std::string> ids;
        for (const auto& e : p.wanting) ids.push_back(e->id());
        rows.push_back({p.created_ms, JoinDestinations(ids), trace::EncodeRecord(*p.record), p.seq,
                        static_cast<int64_t>(p.bytes)});
        stored.push_back(&p);
    }
    const int64_t upto = group.empty() ? 0 : group.back().seq;
    std::lock_guard commit(commit_mu_);
    auto cursors = Cursors();
    if (rows.empty() && upto <= durable_upto_ && (!force_cursors || cursors == saved_cursors_)) {
        return;
    }
    // No reader may see this commit's evictions before its destination has counted them.
    std::lock_guard gate(spool_->read_gate());
    Result<Spool::CommitResult> result = Spool::CommitResult{};
    if (!rows.empty() || cursors != saved_cursors_) result = spool_->Commit(rows, cursors, upto);
    if (!result) {
        // Still delivered from memory; a restart before delivery would lose these records.
        static std::atomic<int64_t> failures{0};
        if (ShouldLog(++failures)) {
            spdlog::error("broadcast: {} ({} record(s) held in memory only)",
                          result.error().message, rows.size());
        }
    } else {
        saved_cursors_ = cursors;
    }
    durable_upto_ = std::max(durable_upto_.load(), upto);
    std::shared_lock lock(mu_);
    const int64_t generation = spool_->corrupt_set_aside();
    for (auto& e : exporters_) {
        e->SpoolReplaced(generation, durable_upto_);
        if (!result) {
            std::vector<std::pair<int64_t, int64_t>> lost;
            for (const Pending* p : stored) {
                for (const auto& w : p->wanting) {
                    if (w == e) lost.emplace_back(p->seq, static_cast<int64_t>(p->bytes));
                }
            }
            if (!lost.empty()) e->NotStored(lost);
        }
        e->Committed(durable_upto_);
    }
    if (result && !result->evicted.empty()) {
        const int64_t evicted_upto = result->evicted.back().seq;
        const int64_t total = spool_->Stats().evicted;
        if (total == static_cast<int64_t>(result->evicted.size()) || ShouldLog(total / 100 + 1)) {
            spdlog::warn(
                "spool: size bound {} bytes reached; evicted the {} oldest record(s) ({} so far)",
                options_.spool.max_bytes, result->evicted.size(), total);
        }
        for (auto& e : exporters_) {
            std::vector<const SpoolRow*> mine;
            for (const auto& row : result->evicted) {
                if (ListsDestination(row.dests, e->id())) mine.push_back(&row);
            }
            e->Evicted(mine, evicted_upto);
        }
    }
}

Result<int64_t> Broadcaster::Replay(const std::string& id, int64_t since_unix_ms) {
    if (!spool_) return Error{"there is no spool to replay from (broadcast.spool.enabled = false)"};
    if (!accepting_) return Error{"Broadcast is not running"};
    auto e = Find(id);
    if (!e) return Error{"no destination with id " + id};
    auto first = spool_->FirstSeqSince(since_unix_ms);
    if (!first) return first.error();
    if (!*first) return int64_t{0};
    // Runs on the Broadcast thread, between two batches of the exporter.
    std::promise<Result<int64_t>> done;
    auto run = [&] {
        const int64_t from = **first;
        const int64_t taken = e->taken();
        if (from > taken) {
            done.set_value(int64_t{0});  // not sent yet: it goes anyway
            return;
        }
        auto all = spool_->Backlog(id, from - 1);
        auto ahead = spool_->Backlog(id, taken);
        if (!all || !ahead) {
            done.set_value(Error{"cannot read the spool"});
            return;
        }
        const int64_t n = all->first - ahead->first;
        e->Rewind(from, n, all->second - ahead->second);
        done.set_value(n);
    };
    if (started_) {
        asio::post(ioc_, run);
    } else {
        run();
    }
    auto n = done.get_future().get();
    if (n) spdlog::info("broadcast: replaying {} record(s) to {}", *n, id);
    return n;
}

void Broadcaster::Shutdown(milliseconds deadline) {
    if (!thread_.joinable()) return;
    accepting_ = false;
    // What waits for the spool is committed first: from then on it survives whatever happens.
    if (writer_.joinable()) {
        {
            std::lock_guard lock(writer_mu_);
            writer_stop_ = true;
        }
        writer_cv_.notify_all();
        writer_.join();
    }
    std::vector<std::shared_ptr<Exporter>> exporters;
    {
        std::shared_lock lock(mu_);
        exporters = exporters_;
    }
    const auto until = Clock::now() + deadline;
    std::mutex mu;
    std::condition_variable cv;
    bool all_done = false;
    // Poll the exporters from the Broadcast thread itself, so their state is read where it lives.
    std::function<void()> check;
    asio::steady_timer poll(ioc_);
    check = [&] {
        bool done = true;
        for (auto& e : exporters) done &= e->finished();
        if (done || Clock::now() >= until) {
            std::lock_guard lock(mu);
            all_done = true;
            cv.notify_all();
            return;
        }
        poll.expires_after(milliseconds(10));
        poll.async_wait([&](const boost::system::error_code&) { check(); });
    };
    asio::post(ioc_, [&] {
        for (auto& e : exporters) e->Stop(until);
        check();
    });
    {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return all_done; });
    }
    // Whatever is still in flight is aborted; the abort runs on the Broadcast thread too.
    std::promise<void> aborted;
    asio::post(ioc_, [&] {
        for (auto& e : exporters) e->Abort();
        aborted.set_value();
    });
    aborted.get_future().wait();
    ioc_.stop();
    thread_.join();
    if (spool_) {
        // The final positions, so the next start resumes exactly here.
        std::lock_guard commit(commit_mu_);
        auto cursors = Cursors();
        if (auto r = spool_->Commit({}, cursors); !r) {
            spdlog::error("broadcast: cannot store the spool cursors: {}", r.error().message);
        }
    }
    for (const auto& h : Health()) {
        if (h.dropped_shutdown > 0) {
            spdlog::warn("broadcast: {} had {} undelivered record(s) at shutdown", h.name,
                         h.dropped_shutdown);
        } else if (spool_ && h.backlog > 0) {
            spdlog::info("broadcast: {} has {} record(s) left in the spool for the next start",
                         h.name, h.backlog);
        }
    }
}

std::vector<DestinationHealth> Broadcaster::Health() const {
    std::shared_lock lock(mu_);
    std::vector<DestinationHealth> out;
    for (const auto& e : exporters_) out.push_back(e->Health());
    return out;
}

std::optional<DestinationHealth> Broadcaster::Health(const std::string& id) const {
    auto e = Find(id);
    if (!e) return std::nullopt;
    return e->Health();
}

std::optional<SpoolStats> Broadcaster::SpoolStatus() const {
    if (!spool_) return std::nullopt;
    SpoolStats s = spool_->Stats();
    // Records delivered before they needed storing took sequence numbers too.
    s.last_seq = std::max(s.last_seq, durable_upto_.load());
    return s;
}

}  // namespace beacon::broadcast
