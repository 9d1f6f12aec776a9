// Request metrics for /metrics (Prometheus text format 0.0.4): requests by route, status and
// model, request latency by route, time to first token by model, and upstream errors by
// provider and kind. Broadcast and spool series come from the Broadcaster (admin/metrics_text.h)
// and are appended by the caller.
//
// Thread-safety: every method may be called from any thread. One mutex, held for a map lookup
// and a few additions per request.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "trace/trace_record.h"

namespace beacon::gateway {

// Bucket upper bounds in seconds, shared by both histograms (1 ms to 2 min).
inline constexpr std::array<double, 15> kLatencyBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};

class Histogram {
  public:
    void Observe(double seconds);
    // Appends the _bucket, _sum and _count lines; `labels` is `k="v",...` or empty.
    void Render(std::string& out, std::string_view name, std::string_view labels) const;

  private:
    std::array<int64_t, kLatencyBuckets.size()> counts_{};  // non-cumulative
    int64_t count_ = 0;
    double sum_ = 0;
};

class Metrics {
  public:
    void ObserveRequest(std::string_view route, int status, std::string_view model, double seconds);
    // TTFT of a streamed answer and the failed upstream attempts of one chat completion.
    void ObserveChat(const trace::TraceRecord& record);

    // Appends this object's series.
    void Render(std::string& out) const;

  private:
    mutable std::mutex mu_;
    std::map<std::tuple<std::string, int, std::string>, int64_t> requests_;
    std::map<std::string, Histogram, std::less<>> latency_;  // by route
    std::map<std::string, Histogram, std::less<>> ttft_;     // by model
    std::map<std::pair<std::string, std::string>, int64_t> upstream_errors_;
};

// Prometheus text helpers, shared with the Broadcast series.
// `name{labels} value\n`; labels already formatted.
void AppendSample(std::string& out, std::string_view name, std::string_view labels, double value);
// `k="v"` with the value escaped as the format requires (\\, \", \n).
std::string Label(std::string_view key, std::string_view value);
// `# HELP` and `# TYPE` lines.
void AppendHeader(std::string& out, std::string_view name, std::string_view type,
                  std::string_view help);

}  // namespace beacon::gateway
