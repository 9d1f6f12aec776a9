#include "broadcast/broadcaster.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

namespace beacon::broadcast {
namespace {

using std::chrono::milliseconds;

// A destination whose answers a test scripts; it records every batch it is given.
class ScriptedDestination final : public Destination {
  public:
    using Script = std::function<ExportOutcome(const std::vector<trace::RecordPtr>&, int call)>;

    explicit ScriptedDestination(Script script) : script_(std::move(script)) {
        config_.id = "scripted";
        config_.name = "scripted";
        config_.type = "test";
    }

    const config::DestinationConfig& config() const override { return config_; }

    boost::asio::awaitable<ExportOutcome> Export(const std::vector<trace::RecordPtr>& batch,
                                                 base::Canceller&) override {
        int call;
        {
            std::lock_guard lock(mu_);
            std::vector<std::string> ids;
            for (const auto& r : batch) ids.push_back(r->generation_id);
            calls_.push_back(ids);
            call = static_cast<int>(calls_.size());
        }
        co_return script_(batch, call);
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
    EXPECT_EQ(b.Health().at(0).queued, 0);
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

}  // namespace
}  // namespace beacon::broadcast
