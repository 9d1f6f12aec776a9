#include "broadcast/broadcaster.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <random>

#include "broadcast/registry.h"
#include "broadcast/sampling.h"

namespace beacon::broadcast {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr milliseconds kUnhealthyProbe{30000};

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

}  // namespace

class Broadcaster::Exporter {
  public:
    Exporter(asio::io_context& ioc, const config::BroadcastConfig& options,
             std::unique_ptr<Destination> destination)
        : options_(options),
          dest_(std::move(destination)),
          wake_(ioc),
          flush_timer_(ioc),
          backoff_timer_(ioc),
          rng_(std::random_device{}()) {}

    // A copy: the destination may be replaced while other threads read it.
    config::DestinationConfig config() const {
        std::lock_guard lock(mu_);
        return config_;
    }

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

    // Broadcast thread: the next export goes through `replacement`; a pending retry is cut
    // short so that fixed settings take effect at once.
    void Replace(std::shared_ptr<Destination> replacement) {
        {
            std::lock_guard lock(mu_);
            config_ = replacement->config();
            healthy_ = true;
        }
        dest_ = std::move(replacement);
        backoff_timer_.cancel();
    }

    // Any thread.
    void Push(trace::RecordPtr record, asio::io_context& ioc) {
        bool wake = false;
        {
            std::lock_guard lock(mu_);
            const size_t bytes = EstimatedBytes(*record);
            if (queue_.size() >= static_cast<size_t>(options_.queue_capacity) ||
                queued_bytes_ + bytes > static_cast<size_t>(options_.max_queue_bytes)) {
                ++dropped_queue_full_;
                if (dropped_queue_full_ == 1 || dropped_queue_full_ % 1000 == 0) {
                    spdlog::warn(
                        "broadcast: {} queue full ({} records, {} bytes); dropped {} so far",
                        config_.name, queue_.size(), queued_bytes_, dropped_queue_full_);
                }
                return;
            }
            queued_bytes_ += bytes;
            queue_.push_back(std::move(record));
            if (waiting_) {
                waiting_ = false;
                wake = true;
            }
        }
        if (wake) asio::post(ioc, [this] { wake_.cancel(); });
    }

    // Broadcast thread from here on.
    asio::awaitable<void> Run() {
        for (;;) {
            bool empty = false;
            {
                std::lock_guard lock(mu_);
                empty = queue_.empty();
                if (empty && stopping_) break;
                if (empty) waiting_ = true;
            }
            if (empty) {
                wake_.expires_at(Clock::time_point::max());
                co_await wake_.async_wait(kTuple);
                continue;
            }
            if (!stopping_ && QueueSize() < static_cast<size_t>(options_.max_batch_records)) {
                // Let a batch fill for at most one flush interval.
                flush_timer_.expires_after(milliseconds(options_.flush_interval_ms));
                co_await flush_timer_.async_wait(kTuple);
            }
            auto batch = TakeBatch();
            if (!batch.empty()) co_await Deliver(std::move(batch));
        }
        finished_ = true;
    }

    void Stop(Clock::time_point deadline) {
        stopping_ = true;
        deadline_ = deadline;
        wake_.cancel();
        flush_timer_.cancel();
    }

    // Past the deadline: abort the I/O in flight and count what never left.
    void Abort() {
        aborted_ = true;
        cancel_.Cancel();
        backoff_timer_.cancel();
        wake_.cancel();
        std::lock_guard lock(mu_);
        dropped_shutdown_ += static_cast<int64_t>(queue_.size());
        queue_.clear();
        queued_bytes_ = 0;
    }

    bool finished() const { return finished_; }

    DestinationHealth Health() const {
        std::lock_guard lock(mu_);
        DestinationHealth h;
        h.id = config_.id;
        h.name = config_.name;
        h.type = config_.type;
        h.healthy = healthy_;
        h.queued = static_cast<int64_t>(queue_.size()) + in_flight_;
        h.delivered = delivered_;
        h.failed = failed_;
        h.retried = retried_;
        h.dropped_queue_full = dropped_queue_full_;
        h.dropped_rejected = dropped_rejected_;
        h.dropped_gave_up = dropped_gave_up_;
        h.dropped_shutdown = dropped_shutdown_;
        h.last_success_unix_ms = last_success_ms_;
        h.last_error_unix_ms = last_error_ms_;
        h.last_error = last_error_;
        return h;
    }

  private:
    size_t QueueSize() const {
        std::lock_guard lock(mu_);
        return queue_.size();
    }

    std::vector<trace::RecordPtr> TakeBatch() {
        std::lock_guard lock(mu_);
        std::vector<trace::RecordPtr> batch;
        size_t bytes = 0;
        while (!queue_.empty() && batch.size() < static_cast<size_t>(options_.max_batch_records)) {
            const size_t b = EstimatedBytes(*queue_.front());
            if (!batch.empty() && bytes + b > static_cast<size_t>(options_.max_batch_bytes)) break;
            bytes += b;
            queued_bytes_ -= std::min(queued_bytes_, b);
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        in_flight_ += static_cast<int64_t>(batch.size());
        return batch;
    }

    milliseconds Backoff(int attempt) {
        const int64_t base = options_.retry_base_ms;
        const int64_t cap = options_.retry_max_ms;
        int64_t d = base << std::min(attempt - 1, 20);
        d = std::min(d, cap);
        std::uniform_int_distribution<int64_t> jitter(d / 2, d);  // "equal jitter"
        return milliseconds(jitter(rng_));
    }

    void Count(int64_t& counter, size_t n) {
        std::lock_guard lock(mu_);
        counter += static_cast<int64_t>(n);
        in_flight_ -= static_cast<int64_t>(n);
    }

    void NoteError(const ExportOutcome& o) {
        std::lock_guard lock(mu_);
        ++failed_;
        last_error_ = o.reason;
        last_error_ms_ = NowUnixMs();
        if (o.unhealthy) healthy_ = false;
    }

    asio::awaitable<void> Deliver(std::vector<trace::RecordPtr> batch) {
        int attempt = 0;
        while (!batch.empty()) {
            if (aborted_) {
                Count(dropped_shutdown_, batch.size());
                co_return;
            }
            std::shared_ptr<Destination> dest = dest_;  // stays alive if replaced meanwhile
            ExportOutcome outcome = co_await dest->Export(batch, cancel_);
            if (aborted_) {
                Count(dropped_shutdown_, batch.size());
                co_return;
            }
            switch (outcome.kind) {
                case ExportOutcome::Kind::kOk: {
                    Count(delivered_, batch.size());
                    std::lock_guard lock(mu_);
                    healthy_ = true;
                    last_success_ms_ = NowUnixMs();
                    co_return;
                }
                case ExportOutcome::Kind::kDrop:
                    if ((outcome.http_status == 400 || outcome.http_status == 413) &&
                        batch.size() > 1) {
                        // Isolate the record the destination refuses; the others still go.
                        std::vector<trace::RecordPtr> left(batch.begin(),
                                                           batch.begin() + batch.size() / 2);
                        std::vector<trace::RecordPtr> right(batch.begin() + batch.size() / 2,
                                                            batch.end());
                        co_await Deliver(std::move(left));
                        co_await Deliver(std::move(right));
                        co_return;
                    }
                    NoteError(outcome);
                    spdlog::warn("broadcast: {} refused {} record(s), dropped: {}", config().name,
                                 batch.size(), outcome.reason);
                    Count(dropped_rejected_, batch.size());
                    co_return;
                case ExportOutcome::Kind::kPartial: {
                    std::vector<trace::RecordPtr> again;
                    for (size_t i : outcome.retry) {
                        if (i < batch.size()) again.push_back(batch[i]);
                    }
                    const size_t delivered = batch.size() - again.size() - outcome.dropped;
                    Count(delivered_, delivered);
                    if (outcome.dropped) {
                        spdlog::warn("broadcast: {} refused {} record(s), dropped: {}",
                                     config().name, outcome.dropped, outcome.reason);
                        Count(dropped_rejected_, outcome.dropped);
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
            if (attempt >= options_.max_attempts) {
                spdlog::error(
                    "broadcast: {} still failing after {} attempts ({}); dropped {} record(s)",
                    config().name, attempt, outcome.reason, batch.size());
                Count(dropped_gave_up_, batch.size());
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
                Count(dropped_shutdown_, batch.size());
                co_return;
            }
            backoff_timer_.expires_after(delay);
            co_await backoff_timer_.async_wait(kTuple);
        }
    }

    const config::BroadcastConfig& options_;
    std::shared_ptr<Destination> dest_;  // Broadcast thread only
    config::DestinationConfig config_;   // guarded by mu_
    asio::steady_timer wake_;
    asio::steady_timer flush_timer_;
    asio::steady_timer backoff_timer_;
    base::Canceller cancel_;
    std::mt19937_64 rng_;

    mutable std::mutex mu_;
    std::deque<trace::RecordPtr> queue_;
    size_t queued_bytes_ = 0;
    bool waiting_ = false;
    int64_t in_flight_ = 0;
    int64_t delivered_ = 0, failed_ = 0, retried_ = 0;
    int64_t dropped_queue_full_ = 0, dropped_rejected_ = 0, dropped_gave_up_ = 0,
            dropped_shutdown_ = 0;
    int64_t last_success_ms_ = 0, last_error_ms_ = 0;
    std::string last_error_;
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

Status Broadcaster::Upsert(const config::DestinationConfig& config) {
    auto d = CreateDestination(config);
    if (!d) return d.error();
    Upsert(std::move(d.value()));
    return Status::Ok();
}

void Broadcaster::Upsert(std::unique_ptr<Destination> destination) {
    std::shared_ptr<Destination> shared = std::move(destination);
    const std::string id = shared->config().id;
    std::unique_lock lock(mu_);
    for (auto& e : exporters_) {
        if (e->config().id != id) continue;
        if (started_) {
            asio::post(ioc_, [e, shared] { e->Replace(shared); });
        } else {
            e->Replace(shared);
        }
        return;
    }
    auto exporter = std::make_shared<Exporter>(ioc_, options_, nullptr);
    exporter->Replace(shared);
    exporters_.push_back(exporter);
    if (started_) asio::co_spawn(ioc_, RunExporter(exporter), asio::detached);
}

void Broadcaster::Remove(const std::string& id) {
    std::unique_lock lock(mu_);
    for (auto it = exporters_.begin(); it != exporters_.end(); ++it) {
        if ((*it)->config().id != id) continue;
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
        auto guard = asio::make_work_guard(ioc_);
        ioc_.run();
    });
}

void Broadcaster::Submit(trace::RecordPtr record) {
    if (!accepting_) return;
    std::shared_lock lock(mu_);
    for (auto& e : exporters_) {
        if (e->Wants(*record, options_.enabled, enabled_workspaces_)) e->Push(record, ioc_);
    }
}

void Broadcaster::Shutdown(milliseconds deadline) {
    if (!thread_.joinable()) return;
    accepting_ = false;
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
        for (auto& e : exporters) {
            if (!e->finished()) e->Abort();
        }
        aborted.set_value();
    });
    aborted.get_future().wait();
    ioc_.stop();
    thread_.join();
    for (const auto& h : Health()) {
        if (h.dropped_shutdown > 0) {
            spdlog::warn("broadcast: {} had {} undelivered record(s) at shutdown", h.name,
                         h.dropped_shutdown);
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
    std::shared_lock lock(mu_);
    for (const auto& e : exporters_) {
        auto h = e->Health();
        if (h.id == id) return h;
    }
    return std::nullopt;
}

}  // namespace beacon::broadcast
