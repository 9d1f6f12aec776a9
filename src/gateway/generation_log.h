// Recent generations, for GET /api/v1/generation?id=... A bounded in-memory ring: the oldest
// entries go first. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "providers/catalog.h"
#include "trace/trace_record.h"

namespace beacon::gateway {

using Attempt = trace::Attempt;

struct GenerationInfo {
    std::string id;
    std::string workspace_id;
    std::string key_id;
    std::string key_name;
    std::string model;          // the model that answered (after fallback)
    std::string provider_name;  // its provider's display name
    std::string user;
    std::string session_id;
    int64_t created_at = 0;  // unix seconds
    bool streamed = false;
    bool cancelled = false;
    std::string finish_reason;         // normalised
    std::string native_finish_reason;  // as the provider said it
    providers::Usage usage;
    providers::Cost cost;
    double latency_ms = 0;          // request start to end
    double generation_time_ms = 0;  // first upstream byte to end
    std::optional<double> time_to_first_token_ms;
    int status = 200;  // what the client got
    std::string error;
    std::vector<Attempt> attempts;
};

class GenerationLog {
  public:
    explicit GenerationLog(size_t capacity) : capacity_(capacity) {}

    // The summary of a finished request (its content is not kept).
    void Add(const trace::TraceRecord& record);
    std::optional<GenerationInfo> Find(const std::string& id) const;

  private:
    // A ring of the last `capacity_` requests. Adding (every request) assigns a slot; finding (a
    // rare GET /api/v1/generation) scans from the newest, which is where callers look. A hash
    // index cost more per request than every lookup together (docs/benchmarks.md).
    size_t capacity_;
    mutable std::mutex mu_;
    std::vector<GenerationInfo> ring_;
    size_t next_ = 0;  // where the next one goes once the ring is full
};

}  // namespace beacon::gateway
