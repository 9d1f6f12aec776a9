// The Destination interface: where finished trace records go (Langfuse, later OTLP and
// webhooks). A destination only encodes and sends; it answers each batch with an outcome that
// tells the exporter what to do, so that retry, backoff, splitting and dropping live in one
// place (exporter.cc).
//
// A new destination type is a folder under destinations/ plus one line in registry.cc.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/cancel.h"
#include "config/config.h"
#include "trace/trace_record.h"

namespace beacon::broadcast {

struct ExportOutcome {
    enum class Kind {
        kOk,       // every record delivered
        kRetry,    // nothing delivered; send the same batch again later
        kDrop,     // the batch was refused for what it is; do not resend it as is
        kPartial,  // some delivered, some refused (`dropped`), some to resend (`retry`)
    };
    Kind kind = Kind::kOk;
    int http_status = 0;                                   // 0 for network errors
    std::string reason;                                    // for logs and health; no content
    std::optional<std::chrono::milliseconds> retry_after;  // the server's Retry-After
    bool unhealthy = false;                                // credentials refused (401/403)
    std::vector<size_t> retry;                             // kPartial: batch indices to resend
    size_t dropped = 0;                                    // kPartial: records refused

    static ExportOutcome Ok() { return {}; }
};

class Destination {
  public:
    virtual ~Destination() = default;

    virtual const config::DestinationConfig& config() const = 0;

    // Sends one batch. Runs on the Broadcast thread; `cancel` aborts the I/O at shutdown.
    // Retries resend the same records, which must encode to the same ids.
    virtual boost::asio::awaitable<ExportOutcome> Export(const std::vector<trace::RecordPtr>& batch,
                                                         base::Canceller& cancel) = 0;
};

}  // namespace beacon::broadcast
