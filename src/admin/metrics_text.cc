#include "admin/metrics_text.h"

#include <functional>
#include <utility>
#include <vector>

#include "gateway/metrics.h"

namespace beacon::admin {

using gateway::AppendHeader;
using gateway::AppendSample;
using gateway::Label;

void RenderBroadcastMetrics(const broadcast::Broadcaster& broadcaster, std::string& out) {
    const auto health = broadcaster.Health();
    using H = broadcast::DestinationHealth;
    struct Series {
        const char* name;
        const char* type;
        const char* help;
        std::function<double(const H&)> value;
    };
    const std::vector<Series> series = {
        {"beacon_broadcast_queued_total", "counter", "Records handed to the destination",
         [](const H& h) { return static_cast<double>(h.accepted); }},
        {"beacon_broadcast_delivered_total", "counter", "Records the destination accepted",
         [](const H& h) { return static_cast<double>(h.delivered); }},
        {"beacon_broadcast_failed_total", "counter", "Export requests that failed",
         [](const H& h) { return static_cast<double>(h.failed); }},
        {"beacon_broadcast_retried_total", "counter", "Export requests repeated",
         [](const H& h) { return static_cast<double>(h.retried); }},
        {"beacon_broadcast_backlog_records", "gauge", "Records waiting, in flight included",
         [](const H& h) { return static_cast<double>(h.backlog); }},
        {"beacon_broadcast_backlog_bytes", "gauge", "Bytes of the records waiting",
         [](const H& h) { return static_cast<double>(h.backlog_bytes); }},
        {"beacon_broadcast_destination_healthy", "gauge",
         "1 unless the destination refuses our credentials",
         [](const H& h) { return h.healthy ? 1.0 : 0.0; }},
        {"beacon_broadcast_last_success_timestamp_seconds", "gauge",
         "Unix time of the last delivery (0: none yet)",
         [](const H& h) { return static_cast<double>(h.last_success_unix_ms) / 1000; }},
    };
    for (const auto& s : series) {
        AppendHeader(out, s.name, s.type, s.help);
        for (const auto& h : health) {
            AppendSample(out, s.name, Label("destination", h.id), s.value(h));
        }
    }
    AppendHeader(out, "beacon_broadcast_dropped_total", "counter",
                 "Records that will never be delivered, by reason");
    for (const auto& h : health) {
        const std::pair<const char*, int64_t> reasons[] = {
            {"rejected", h.dropped_rejected},       {"spool_full", h.dropped_spool_full},
            {"queue_full", h.dropped_queue_full},   {"corrupt", h.dropped_corrupt},
            {"spool_error", h.dropped_spool_error}, {"gave_up", h.dropped_gave_up},
            {"shutdown", h.dropped_shutdown}};
        for (const auto& [reason, n] : reasons) {
            AppendSample(out, "beacon_broadcast_dropped_total",
                         Label("destination", h.id) + "," + Label("reason", reason),
                         static_cast<double>(n));
        }
    }
    if (auto st = broadcaster.SpoolStatus()) {
        AppendHeader(out, "beacon_spool_bytes", "gauge", "Accounted bytes of the spooled records");
        AppendSample(out, "beacon_spool_bytes", "", static_cast<double>(st->bytes));
        AppendHeader(out, "beacon_spool_file_bytes", "gauge", "Spool database and WAL on disk");
        AppendSample(out, "beacon_spool_file_bytes", "", static_cast<double>(st->file_bytes));
        AppendHeader(out, "beacon_spool_max_bytes", "gauge", "The spool's size bound");
        AppendSample(out, "beacon_spool_max_bytes", "", static_cast<double>(st->max_bytes));
        AppendHeader(out, "beacon_spool_records", "gauge", "Records in the spool");
        AppendSample(out, "beacon_spool_records", "", static_cast<double>(st->records));
        AppendHeader(out, "beacon_spool_segments", "gauge",
                     "Spool files in use (one SQLite database)");
        AppendSample(out, "beacon_spool_segments", "", 1);
        AppendHeader(out, "beacon_spool_stored_total", "counter",
                     "Records written to the spool (those not delivered within a flush interval)");
        AppendSample(out, "beacon_spool_stored_total", "", static_cast<double>(st->stored));
        AppendHeader(out, "beacon_spool_evicted_total", "counter",
                     "Records evicted by the size bound");
        AppendSample(out, "beacon_spool_evicted_total", "", static_cast<double>(st->evicted));
        AppendHeader(out, "beacon_spool_corrupt_total", "counter", "Damaged spool files set aside");
        AppendSample(out, "beacon_spool_corrupt_total", "",
                     static_cast<double>(st->corrupt_set_aside));
    }
}

}  // namespace beacon::admin
