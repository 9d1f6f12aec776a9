#include "gateway/generation_log.h"

#include <algorithm>

namespace beacon::gateway {

namespace {

// Every field is assigned, so that a reused slot keeps nothing of its previous request.
void Fill(GenerationInfo& info, const trace::TraceRecord& r) {
    info.id = r.generation_id;
    info.workspace_id = r.workspace_id;
    info.key_id = r.api_key_id;
    info.key_name = r.api_key_name;
    info.model = r.model;
    info.provider_name = r.provider;
    info.user = r.user;
    info.session_id = r.session_id;
    info.created_at = r.start_ns / 1000000000;
    info.streamed = r.streamed;
    info.cancelled = r.outcome == trace::Outcome::kCancelled;
    if (info.cancelled && r.finish_reason.empty()) {
        info.finish_reason = "cancelled";
    } else {
        info.finish_reason = r.finish_reason;
    }
    info.native_finish_reason = r.native_finish_reason;
    info.usage = r.usage;
    info.cost = r.cost;
    info.latency_ms = static_cast<double>(r.end_ns - r.start_ns) / 1e6;
    info.generation_time_ms = info.latency_ms;
    if (!r.attempts.empty()) {
        double before = 0;
        for (size_t i = 0; i + 1 < r.attempts.size(); ++i) before += r.attempts[i].latency_ms;
        info.generation_time_ms = std::max(0.0, info.latency_ms - before);
    }
    info.time_to_first_token_ms.reset();
    if (r.first_token_ns) {
        info.time_to_first_token_ms = static_cast<double>(*r.first_token_ns - r.start_ns) / 1e6;
    }
    info.status = r.status;
    info.error = r.error;
    info.attempts = r.attempts;
}

}  // namespace

void GenerationLog::Add(const trace::TraceRecord& r) {
    // Written into its slot: once the ring is full, the slot's strings already have room, so
    // adding allocates nothing (a GenerationInfo built and moved in was ~10 allocations and as
    // many frees per request).
    std::lock_guard lock(mu_);
    if (capacity_ == 0) return;
    if (ring_.size() < capacity_) {
        Fill(ring_.emplace_back(), r);
        return;
    }
    Fill(ring_[next_], r);
    next_ = (next_ + 1) % capacity_;
}

std::optional<GenerationInfo> GenerationLog::Find(const std::string& id) const {
    std::lock_guard lock(mu_);
    const size_t n = ring_.size();
    for (size_t i = 0; i < n; ++i) {
        // Newest first: the slot before next_ (or the end, while the ring is filling).
        const size_t at = (next_ + n - 1 - i) % n;
        if (ring_[at].id == id) return ring_[at];
    }
    return std::nullopt;
}

}  // namespace beacon::gateway
