#include "broadcast/broadcaster.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace beacon::broadcast {
namespace {

using std::chrono::milliseconds;

// A destination whose answers a test scripts; it records every batch it is given.
class ScriptedDestination final : public Destination {
  public:
    using Script = std::function<ExportOutcome(const std::vector<trace::RecordPtr>&, int call)>;

    explicit ScriptedDestination(Script script, std::string id = "scripted")
        : script_(std::move(script)) {
        config_.id = id;
        config_.name = id;
        config_.type = "test";
    }

    const config::DestinationConfig& config() const override { return config_; }

    boost::asio::awaitable<ExportOutcome> Export(const std::vector<trace::RecordPtr>& batch,
                                                 base::Canceller&) override {
        int call;
        std::vector<std::string> ids;
        {
            std::lock_guard lock(mu_);
            for (const auto& r : batch) ids.push_back(r->generation_id);
            calls_.push_back(ids);
            call = static_cast<int>(calls_.size());
        }
        ExportOutcome outcome = script_(batch, call);
        if (outcome.kind == ExportOutcome::Kind::kOk) {
            std::lock_guard lock(mu_);
            accepted_.push_back(std::move(ids));
        }
        co_return outcome;
    }

    // The batches answered Ok.
    std::vector<std::vector<std::string>> accepted() const {
        std::lock_guard lock(mu_);
        return accepted_;
    }

    std::vector<std::vector<std::string>> calls() const {
        std::lock_guard lock(mu_);
        return calls_;
    }

  private:
    config::DestinationConfig config_;
    Script script_;
    mutable std::mutex mu_;
    std::vector<std::vector<std::string>> calls_;
    std::vector<std::vector<std::string>> accepted_;
};

config::BroadcastConfig Options() {
    config::BroadcastConfig o;
    o.enabled = true;
    o.flush_interval_ms = 5;
    o.max_batch_records = 100;
    o.retry_base_ms = 1;
    o.retry_max_ms = 5;
    o.max_attempts = 5;
    return o;
}

trace::RecordPtr Rec(int i) {
    auto r = std::make_shared<trace::TraceRecord>();
    r->generation_id = "gen-" + std::to_string(i);
    return r;
}

// Polls the health counters (bounded) until `done` holds.
bool WaitFor(Broadcaster& b, const std::function<bool(const DestinationHealth&)>& done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
        if (done(b.Health().at(0))) return true;
        std::this_thread::sleep_for(milliseconds(1));
    }
    return false;
}

// Verifies records are batched and delivered once when the destination accepts them.
TEST(Broadcaster, DeliversInBatches) {
    auto dest =
        std::make_unique<ScriptedDestination>([](auto&, int) { return ExportOutcome::Ok(); });
    auto* d = dest.get();
    Broadcaster b(Options());
    b.Upsert(std::move(dest));
    b.Start();
    for (int i = 0; i < 10; ++i) b.Submit(Rec(i));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 10; }));
    size_t total = 0;
    for (const auto& c : d->calls()) total += c.size();
    EXPECT_EQ(total, 10u);
    EXPECT_LE(d->calls().size(), 10u);
    b.Shutdown(milliseconds(1000));
}

// Verifies a retryable failure resends the identical batch, which is then delivered once.
TEST(Broadcaster, RetriesWithSameRecords) {
    auto dest = std::make_unique<ScriptedDestination>([](auto&, int call) {
        if (call <= 2) {
            ExportOutcome o;
            o.kind = ExportOutcome::Kind::kRetry;
            o.http_status = 503;
            o.reason = "HTTP 503";
            return o;
        }
        return ExportOutcome::Ok();
    });
    auto* d = dest.get();
    Broadcaster b(Options());
    b.Upsert(std::move(dest));
    b.Start();
    b.Submit(Rec(1));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 1; }));
    auto calls = d->calls();
    ASSERT_EQ(calls.size(), 3u);
    EXPECT_EQ(calls[0], calls[2]);
    auto h = b.Health().at(0);
    EXPECT_EQ(h.failed, 2);
    EXPECT_EQ(h.retried, 2);
    EXPECT_EQ(h.last_error, "HTTP 503");
    b.Shutdown(milliseconds(1000));
}

// Verifies Retry-After is honoured: the next attempt waits at least that long.
TEST(Broadcaster, HonoursRetryAfter) {
    std::vector<std::chrono::steady_clock::time_point> at;
    std::mutex mu;
    auto dest = std::make_unique<ScriptedDestination>([&](auto&, int call) {
        {
            std::lock_guard lock(mu);
            at.push_back(std::chrono::steady_clock::now());
        }
        if (call == 1) {
            ExportOutcome o;
            o.kind = ExportOutcome::Kind::kRetry;
            o.http_status = 429;
            o.retry_after = milliseconds(200);
            return o;
        }
        return ExportOutcome::Ok();
    });
    Broadcaster b(Options());
    b.Upsert(std::move(dest));
    b.Start();
    b.Submit(Rec(1));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 1; }));
    std::lock_guard lock(mu);
    ASSERT_EQ(at.size(), 2u);
    EXPECT_GE(at[1] - at[0], milliseconds(200));
    b.Shutdown(milliseconds(1000));
}

// Verifies a 400 on a batch is split until only the bad record is dropped.
TEST(Broadcaster, SplitsToIsolateBadRecord) {
    auto dest =
        std::make_unique<ScriptedDestination>([](const std::vector<trace::RecordPtr>& batch, int) {
            for (const auto& r : batch) {
                if (r->generation_id == "gen-3") {
                    ExportOutcome o;
                    o.kind = ExportOutcome::Kind::kDrop;
                    o.http_status = 400;
                    o.reason = "HTTP 400";
                    return o;
                }
            }
            return ExportOutcome::Ok();
        });
    auto options = Options();
    options.flush_interval_ms = 200;  // let all eight land in one batch
    Broadcaster b(options);
    b.Upsert(std::move(dest));
    b.Start();
    for (int i = 0; i < 8; ++i) b.Submit(Rec(i));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered + h.dropped_rejected == 8; }));
    auto h = b.Health().at(0);
    EXPECT_EQ(h.delivered, 7);
    EXPECT_EQ(h.dropped_rejected, 1);
    b.Shutdown(milliseconds(1000));
}

// Verifies a partial answer: delivered, dropped and resent records are each counted once.
TEST(Broadcaster, PartialOutcome) {
    auto dest = std::make_unique<ScriptedDestination>(
        [](const std::vector<trace::RecordPtr>& batch, int call) {
            if (call == 1 && batch.size() == 3) {
                ExportOutcome o;
                o.kind = ExportOutcome::Kind::kPartial;
                o.http_status = 207;
                o.dropped = 1;
                o.retry = {2};
                return o;
            }
            return ExportOutcome::Ok();
        });
    auto* d = dest.get();
    auto options = Options();
    options.flush_interval_ms = 200;
    Broadcaster b(options);
    b.Upsert(std::move(dest));
    b.Start();
    for (int i = 0; i < 3; ++i) b.Submit(Rec(i));
    ASSERT_TRUE(
        WaitFor(b, [](const auto& h) { return h.delivered == 2 && h.dropped_rejected == 1; }));
    auto calls = d->calls();
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_EQ(calls[1], std::vector<std::string>{"gen-2"});
    b.Shutdown(milliseconds(1000));
}

// Verifies a batch that keeps failing is dropped after max_attempts and counted.
TEST(Broadcaster, GivesUpAfterMaxAttempts) {
    auto dest = std::make_unique<ScriptedDestination>([](auto&, int) {
        ExportOutcome o;
        o.kind = ExportOutcome::Kind::kRetry;
        o.reason = "connect: refused";
        return o;
    });
    auto* d = dest.get();
    Broadcaster b(Options());
    b.Upsert(std::move(dest));
    b.Start();
    b.Submit(Rec(1));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.dropped_gave_up == 1; }));
    EXPECT_EQ(d->calls().size(), 5u);
    b.Shutdown(milliseconds(1000));
}

// Verifies a full queue drops new records and counts them, without blocking Submit.
TEST(Broadcaster, FullQueueDropsAndCounts) {
    auto options = Options();
    options.queue_capacity = 5;
    options.flush_interval_ms = 200;  // the loop below fills the queue long before a flush
    auto dest =
        std::make_unique<ScriptedDestination>([](auto&, int) { return ExportOutcome::Ok(); });
    Broadcaster b(options);
    b.Upsert(std::move(dest));
    // Not started: nothing drains the queue, and Submit before Start is ignored entirely.
    b.Submit(Rec(0));
    EXPECT_EQ(b.Health().at(0).backlog, 0);
    b.Start();
    for (int i = 0; i < 50; ++i) b.Submit(Rec(i));
    auto h = b.Health().at(0);
    EXPECT_GE(h.dropped_queue_full, 1);
    ASSERT_TRUE(WaitFor(b, [](const auto& x) { return x.delivered + x.dropped_queue_full == 50; }));
    b.Shutdown(milliseconds(1000));
}

// Verifies shutdown delivers what is queued when the destination works.
TEST(Broadcaster, ShutdownFlushes) {
    auto options = Options();
    options.flush_interval_ms = 60000;  // only shutdown can flush this
    auto dest =
        std::make_unique<ScriptedDestination>([](auto&, int) { return ExportOutcome::Ok(); });
    Broadcaster b(options);
    b.Upsert(std::move(dest));
    b.Start();
    for (int i = 0; i < 3; ++i) b.Submit(Rec(i));
    b.Shutdown(milliseconds(5000));
    EXPECT_EQ(b.Health().at(0).delivered, 3);
}

// Verifies shutdown gives up at its deadline when the destination keeps failing.
TEST(Broadcaster, ShutdownRespectsDeadline) {
    auto options = Options();
    options.retry_base_ms = 50;
    options.retry_max_ms = 50;
    options.max_attempts = 1000;
    auto dest = std::make_unique<ScriptedDestination>([](auto&, int) {
        ExportOutcome o;
        o.kind = ExportOutcome::Kind::kRetry;
        return o;
    });
    Broadcaster b(options);
    b.Upsert(std::move(dest));
    b.Start();
    b.Submit(Rec(1));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.failed >= 1; }));
    const auto start = std::chrono::steady_clock::now();
    b.Shutdown(milliseconds(300));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
    EXPECT_EQ(b.Health().at(0).dropped_shutdown, 1);
}

// Verifies removing a destination while it holds records waiting for a batch to fill neither
// crashes nor sends them (memory only: there is no spool to read them back from).
TEST(Broadcaster, RemoveWhileRecordsWait) {
    auto options = Options();
    options.flush_interval_ms = 200;
    // The destination goes away with its exporter: count its calls outside it.
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto dest = std::make_unique<ScriptedDestination>([calls](auto&, int) {
        ++*calls;
        return ExportOutcome::Ok();
    });
    Broadcaster b(options);
    b.Upsert(std::move(dest));
    b.Start();
    for (int i = 0; i < 3; ++i) b.Submit(Rec(i));
    b.Remove("scripted");
    b.Submit(Rec(4));
    EXPECT_TRUE(b.Health().empty());
    b.Shutdown(milliseconds(1000));
    EXPECT_EQ(calls->load(), 0);
}

// --- With the spool -------------------------------------------------------------------------

class SpoolDir {
  public:
    SpoolDir() {
        std::random_device rd;
        dir_ = std::filesystem::temp_directory_path() /
               ("beacon-broadcaster-test-" + std::to_string(rd()));
        std::filesystem::create_directories(dir_);
    }
    ~SpoolDir() { std::filesystem::remove_all(dir_); }
    SpoolOptions Options(int64_t max_bytes = int64_t{1} << 30) const {
        return {(dir_ / "spool.db").string(), max_bytes, SpoolSync::kNormal};
    }

  private:
    std::filesystem::path dir_;
};

config::BroadcastConfig SpoolBroadcastOptions() {
    auto o = Options();
    o.max_attempts = 0;  // retry while the spool holds the records
    o.spool.flush_interval_ms = 5;
    return o;
}

ExportOutcome Retry() {
    ExportOutcome o;
    o.kind = ExportOutcome::Kind::kRetry;
    o.http_status = 503;
    o.reason = "HTTP 503";
    return o;
}

// How many times each generation id was accepted by the destination.
std::map<std::string, int> Counts(const ScriptedDestination& d) {
    std::map<std::string, int> out;
    for (const auto& call : d.accepted()) {
        for (const auto& id : call) ++out[id];
    }
    return out;
}

bool WaitForSpool(Broadcaster& b, const std::function<bool(const SpoolStats&)>& done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
        if (done(*b.SpoolStatus())) return true;
        std::this_thread::sleep_for(milliseconds(1));
    }
    return false;
}

// Verifies records go through the spool, arrive once, and leave the spool once delivered.
TEST(BroadcasterSpool, DeliversAndEmptiesTheSpool) {
    SpoolDir dir;
    auto dest =
        std::make_unique<ScriptedDestination>([](auto&, int) { return ExportOutcome::Ok(); });
    auto* d = dest.get();
    Broadcaster b(SpoolBroadcastOptions());
    ASSERT_TRUE(b.OpenSpool(dir.Options()).ok());
    b.Upsert(std::move(dest));
    b.Start();
    for (int i = 0; i < 20; ++i) b.Submit(Rec(i));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 20; }));
    EXPECT_EQ(b.Health().at(0).backlog, 0);
    // Cursors are stored at least once a second; then the delivered rows are deleted.
    ASSERT_TRUE(WaitForSpool(b, [](const auto& s) { return s.records == 0; }));
    for (const auto& [id, n] : Counts(*d)) EXPECT_EQ(n, 1) << id;
    EXPECT_EQ(Counts(*d).size(), 20u);
    b.Shutdown(milliseconds(1000));
}

// Verifies what a failing destination could not deliver survives a restart and is delivered
// once by the next Broadcaster on the same spool.
TEST(BroadcasterSpool, ResumesAfterRestart) {
    SpoolDir dir;
    {
        auto failing = std::make_unique<ScriptedDestination>([](auto&, int) { return Retry(); });
        Broadcaster b(SpoolBroadcastOptions());
        ASSERT_TRUE(b.OpenSpool(dir.Options()).ok());
        b.Upsert(std::move(failing));
        b.Start();
        for (int i = 0; i < 10; ++i) b.Submit(Rec(i));
        ASSERT_TRUE(WaitForSpool(b, [](const auto& s) { return s.records == 10; }));
        ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.failed >= 1; }));
        EXPECT_EQ(b.Health().at(0).backlog, 10);
        b.Shutdown(milliseconds(50));
        EXPECT_EQ(b.Health().at(0).dropped(), 0);
    }
    auto ok = std::make_unique<ScriptedDestination>([](auto&, int) { return ExportOutcome::Ok(); });
    auto* d = ok.get();
    Broadcaster b(SpoolBroadcastOptions());
    ASSERT_TRUE(b.OpenSpool(dir.Options()).ok());
    b.Upsert(std::move(ok));
    EXPECT_EQ(b.Health().at(0).backlog, 10);
    b.Start();
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 10; }));
    auto counts = Counts(*d);
    EXPECT_EQ(counts.size(), 10u);
    for (const auto& [id, n] : counts) EXPECT_EQ(n, 1) << id;
    b.Shutdown(milliseconds(1000));
}

// Verifies a destination whose memory overflows reads the rest back from the spool, in order
// and without loss or repeat.
TEST(BroadcasterSpool, OverflowCatchesUpFromTheSpool) {
    SpoolDir dir;
    auto options = SpoolBroadcastOptions();
    options.queue_capacity = 4;
    options.max_batch_records = 3;
    std::atomic<bool> open{false};
    auto dest = std::make_unique<ScriptedDestination>(
        [&open](auto&, int) { return open ? ExportOutcome::Ok() : Retry(); });
    auto* d = dest.get();
    Broadcaster b(options);
    ASSERT_TRUE(b.OpenSpool(dir.Options()).ok());
    b.Upsert(std::move(dest));
    b.Start();
    for (int i = 0; i < 60; ++i) {
        b.Submit(Rec(i));  // one at a time: the writer queue holds 4 at most too
        ASSERT_TRUE(WaitForSpool(b, [&](const auto& s) { return s.last_seq == i + 1; }));
    }
    open = true;
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 60; }));
    std::vector<std::string> order;
    std::map<std::string, int> seen;
    for (const auto& call : d->accepted()) {
        for (const auto& id : call) {
            if (seen[id]++ == 0) order.push_back(id);
        }
    }
    ASSERT_EQ(order.size(), 60u);
    for (int i = 0; i < 60; ++i) EXPECT_EQ(order[i], "gen-" + std::to_string(i));
    EXPECT_EQ(b.Health().at(0).dropped(), 0);
    b.Shutdown(milliseconds(1000));
}

// Verifies the size bound drops the oldest records, counts them per destination, and that the
// newest are delivered once the destination recovers.
TEST(BroadcasterSpool, SizeBoundDropsOldest) {
    SpoolDir dir;
    std::atomic<bool> open{false};
    auto dest = std::make_unique<ScriptedDestination>(
        [&open](auto&, int) { return open ? ExportOutcome::Ok() : Retry(); });
    auto* d = dest.get();
    Broadcaster b(SpoolBroadcastOptions());
    ASSERT_TRUE(b.OpenSpool(dir.Options(1 << 20)).ok());
    b.Upsert(std::move(dest));
    b.Start();
    const int n = 40;
    for (int i = 0; i < n; ++i) {
        auto r = std::make_shared<trace::TraceRecord>();
        r->generation_id = "gen-" + std::to_string(i);
        r->input_json = std::string(100 * 1024, 'x');
        b.Submit(r);
        ASSERT_TRUE(WaitForSpool(b, [&](const auto& s) { return s.last_seq == i + 1; }));
    }
    ASSERT_TRUE(WaitForSpool(b, [](const auto& s) { return s.evicted > 0; }));
    EXPECT_LE(b.SpoolStatus()->bytes, 1 << 20);
    open = true;
    ASSERT_TRUE(WaitFor(b, [](const auto& h) {
        return h.backlog == 0 && h.delivered + h.dropped_spool_full == 40;
    }));
    auto h = b.Health().at(0);
    EXPECT_GT(h.dropped_spool_full, 0);
    EXPECT_EQ(Counts(*d).count("gen-39"), 1u);
    for (const auto& [id, count] : Counts(*d)) EXPECT_LE(count, 1) << id;
    b.Shutdown(milliseconds(1000));
}

// Verifies a slow or broken destination does not hold back another one, and that the spool keeps
// what the broken one still needs.
TEST(BroadcasterSpool, DestinationsHaveTheirOwnCursor) {
    SpoolDir dir;
    auto good = std::make_unique<ScriptedDestination>(
        [](auto&, int) { return ExportOutcome::Ok(); }, "good");
    auto bad = std::make_unique<ScriptedDestination>([](auto&, int) { return Retry(); }, "bad");
    Broadcaster b(SpoolBroadcastOptions());
    ASSERT_TRUE(b.OpenSpool(dir.Options()).ok());
    b.Upsert(std::move(good));
    b.Upsert(std::move(bad));
    b.Start();
    for (int i = 0; i < 10; ++i) b.Submit(Rec(i));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 10; }));  // "good"
    EXPECT_EQ(b.Health("bad")->backlog, 10);
    // Stored although "good" has them: "bad" did not deliver them within the flush interval.
    ASSERT_TRUE(WaitForSpool(b, [](const auto& s) { return s.records == 10; }));
    EXPECT_EQ(b.SpoolStatus()->stored, 10);
    // Replay to "good": its records are still in the spool because "bad" needs them.
    auto replayed = b.Replay("good", 0);
    ASSERT_TRUE(replayed.ok()) << replayed.error().message;
    EXPECT_EQ(*replayed, 10);
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 20; }));
    b.Shutdown(milliseconds(100));
}

// Verifies that records every destination delivered within the spool's flush interval are
// never written to it, while their sequence numbers are still used up.
TEST(BroadcasterSpool, DeliveredInTimeIsNotStored) {
    SpoolDir dir;
    auto options = SpoolBroadcastOptions();
    options.spool.flush_interval_ms = 1000;  // ample time to deliver, even on a loaded machine
    options.max_batch_records = 5;           // full batches go at once
    options.flush_interval_ms = 60000;       // so only full batches go
    auto dest =
        std::make_unique<ScriptedDestination>([](auto&, int) { return ExportOutcome::Ok(); });
    Broadcaster b(options);
    ASSERT_TRUE(b.OpenSpool(dir.Options()).ok());
    b.Upsert(std::move(dest));
    b.Start();
    for (int i = 0; i < 20; ++i) b.Submit(Rec(i));
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 20; }));
    // The writer has looked at all 20 (last_seq) and stored none of them.
    ASSERT_TRUE(WaitForSpool(b, [](const auto& s) { return s.last_seq == 20; }));
    EXPECT_EQ(b.SpoolStatus()->stored, 0);
    EXPECT_EQ(b.SpoolStatus()->records, 0);
    EXPECT_EQ(b.Health().at(0).backlog, 0);
    b.Shutdown(milliseconds(1000));
}

// Verifies that sequence numbers used by records that were never stored are not given again
// after a restart, so a destination's stored cursor never covers a new record.
TEST(BroadcasterSpool, SequenceSurvivesUnstoredRecords) {
    SpoolDir dir;
    auto options = SpoolBroadcastOptions();
    options.max_batch_records = 1;
    {
        auto dest =
            std::make_unique<ScriptedDestination>([](auto&, int) { return ExportOutcome::Ok(); });
        Broadcaster b(options);
        ASSERT_TRUE(b.OpenSpool(dir.Options()).ok());
        b.Upsert(std::move(dest));
        b.Start();
        for (int i = 0; i < 5; ++i) b.Submit(Rec(i));
        ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 5; }));
        b.Shutdown(milliseconds(1000));  // stores the final cursor (5)
    }
    // Next start: the destination is down, so the new record must be stored and resent later.
    std::atomic<bool> open{false};
    auto dest = std::make_unique<ScriptedDestination>(
        [&open](auto&, int) { return open ? ExportOutcome::Ok() : Retry(); });
    auto* d = dest.get();
    Broadcaster b(options);
    ASSERT_TRUE(b.OpenSpool(dir.Options()).ok());
    b.Upsert(std::move(dest));
    b.Start();
    b.Submit(Rec(100));
    ASSERT_TRUE(WaitForSpool(b, [](const auto& s) { return s.records == 1 && s.last_seq == 6; }));
    open = true;
    ASSERT_TRUE(WaitFor(b, [](const auto& h) { return h.delivered == 1; }));
    EXPECT_EQ(Counts(*d).count("gen-100"), 1u);
    b.Shutdown(milliseconds(1000));
}

}  // namespace
}  // namespace beacon::broadcast
