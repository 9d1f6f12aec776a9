#include "gateway/metrics.h"

#include <cmath>
#include <cstdio>

namespace beacon::gateway {

namespace {

std::string FormatValue(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof(buf), "%.0f", v);
    } else {
        std::snprintf(buf, sizeof(buf), "%.9g", v);
    }
    return buf;
}

std::string Join(std::string_view a, std::string_view b) {
    if (a.empty()) return std::string(b);
    if (b.empty()) return std::string(a);
    return std::string(a) + "," + std::string(b);
}

std::string_view ErrorKind(const trace::Attempt& a) {
    if (a.status >= 500) return "http_5xx";
    if (a.status == 429) return "http_429";
    if (a.status >= 400) return "http_4xx";
    if (a.error.find("timeout") != std::string::npos ||
        a.error.find("timed out") != std::string::npos) {
        return "timeout";
    }
    return "network";
}

}  // namespace

void AppendSample(std::string& out, std::string_view name, std::string_view labels, double value) {
    out += name;
    if (!labels.empty()) {
        out.push_back('{');
        out += labels;
        out.push_back('}');
    }
    out.push_back(' ');
    out += FormatValue(value);
    out.push_back('\n');
}

std::string Label(std::string_view key, std::string_view value) {
    std::string out(key);
    out += "=\"";
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
    return out;
}

void AppendHeader(std::string& out, std::string_view name, std::string_view type,
                  std::string_view help) {
    out += "# HELP ";
    out += name;
    out.push_back(' ');
    out += help;
    out += "\n# TYPE ";
    out += name;
    out.push_back(' ');
    out += type;
    out.push_back('\n');
}

void Histogram::Observe(double seconds) {
    size_t i = 0;
    while (i < kLatencyBuckets.size() && seconds > kLatencyBuckets[i]) ++i;
    if (i < kLatencyBuckets.size()) ++counts_[i];
    ++count_;
    sum_ += seconds;
}

void Histogram::Render(std::string& out, std::string_view name, std::string_view labels) const {
    const std::string bucket = std::string(name) + "_bucket";
    int64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
        cumulative += counts_[i];
        AppendSample(out, bucket, Join(labels, Label("le", FormatValue(kLatencyBuckets[i]))),
                     static_cast<double>(cumulative));
    }
    AppendSample(out, bucket, Join(labels, Label("le", "+Inf")), static_cast<double>(count_));
    AppendSample(out, std::string(name) + "_sum", labels, sum_);
    AppendSample(out, std::string(name) + "_count", labels, static_cast<double>(count_));
}

void Metrics::ObserveRequest(std::string_view route, int status, std::string_view model,
                             double seconds) {
    std::lock_guard lock(mu_);
    ++requests_[{std::string(route), status, std::string(model)}];
    auto it = latency_.find(route);
    if (it == latency_.end()) it = latency_.emplace(std::string(route), Histogram{}).first;
    it->second.Observe(seconds);
}

void Metrics::ObserveChat(const trace::TraceRecord& r) {
    std::lock_guard lock(mu_);
    if (r.streamed && r.first_token_ns && *r.first_token_ns >= r.start_ns) {
        auto it = ttft_.find(r.model);
        if (it == ttft_.end()) it = ttft_.emplace(r.model, Histogram{}).first;
        it->second.Observe(static_cast<double>(*r.first_token_ns - r.start_ns) / 1e9);
    }
    for (const auto& a : r.attempts) {
        if ((a.status >= 200 && a.status < 300) || (a.status == 0 && a.error.empty())) continue;
        ++upstream_errors_[{a.provider, std::string(ErrorKind(a))}];
    }
}

void Metrics::Render(std::string& out) const {
    std::lock_guard lock(mu_);
    AppendHeader(out, "beacon_http_requests_total", "counter",
                 "HTTP requests answered, by route, status and model");
    for (const auto& [key, n] : requests_) {
        const auto& [route, status, model] = key;
        AppendSample(out, "beacon_http_requests_total",
                     Label("route", route) + "," + Label("status", std::to_string(status)) + "," +
                         Label("model", model),
                     static_cast<double>(n));
    }
    AppendHeader(out, "beacon_http_request_duration_seconds", "histogram",
                 "Time from request to the end of the response, by route");
    for (const auto& [route, h] : latency_) {
        h.Render(out, "beacon_http_request_duration_seconds", Label("route", route));
    }
    AppendHeader(out, "beacon_time_to_first_token_seconds", "histogram",
                 "Streamed chat completions: time from request to the first token, by model");
    for (const auto& [model, h] : ttft_) {
        h.Render(out, "beacon_time_to_first_token_seconds", Label("model", model));
    }
    AppendHeader(out, "beacon_upstream_errors_total", "counter",
                 "Failed upstream attempts, by provider and kind");
    for (const auto& [key, n] : upstream_errors_) {
        AppendSample(out, "beacon_upstream_errors_total",
                     Label("provider", key.first) + "," + Label("kind", key.second),
                     static_cast<double>(n));
    }
}

}  // namespace beacon::gateway
