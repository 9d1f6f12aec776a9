// How a TraceRecord becomes Langfuse data (design.md, "Broadcast to Langfuse: the mapping").
// Pure functions: the transport-independent view (Map), and the two wire encodings built from it
// (OTLP/JSON for Langfuse >= 3.22, the legacy ingestion batch for older servers).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "trace/trace_record.h"

namespace beacon::broadcast::langfuse {

inline constexpr std::string_view kDefaultTraceName = "LLM Request";
inline constexpr std::string_view kDefaultGenerationName = "LLM Generation";
// Content larger than this is replaced by a note (see trace::kMaxContentBytes).
inline constexpr size_t kMaxContentBytes = trace::kMaxContentBytes;

// 32 lowercase hex: `value` itself when it already is, else the first 32 hex of sha256(value).
std::string TraceIdFrom(std::string_view value);
// 16 lowercase hex: `value` itself when it already is, else the first 16 hex of sha256(value).
std::string ObservationIdFrom(std::string_view value);

struct Environment {
    std::string name;      // what Langfuse gets
    std::string rejected;  // the original value when it was not usable (goes to metadata)
};
// Lowercased; must then match [a-z0-9_-]{1,40} and not start with "langfuse", else "default".
Environment NormalizeEnvironment(std::string_view raw);

enum class Level { kDefault, kWarning, kError };
std::string_view LevelName(Level level);

// Everything Langfuse shows for one record, with JSON-valued fields as JSON text. The views
// point into the record: Map's record must outlive its result (Map of a temporary does not
// compile).
struct Mapped {
    std::string trace_id;
    std::string generation_id;           // observation id
    std::optional<std::string> span_id;  // when trace.span_name was given
    std::string parent_id;               // parent of the top observation, or empty
    std::string_view trace_name;
    std::string_view generation_name;
    std::string_view span_name;
    std::string_view user;
    std::string_view session;
    std::string environment;
    std::string_view release;
    std::string_view version;
    std::vector<std::string_view> tags;
    std::vector<std::pair<std::string_view, std::string>> trace_metadata;        // string values
    std::vector<std::pair<std::string_view, std::string>> observation_metadata;  // string values
    std::string_view model;
    std::string_view model_parameters_json;
    std::optional<std::string> output_json;  // absent under Privacy Mode or without an answer
    std::string usage_details_json;
    std::string cost_details_json;
    int64_t start_ns = 0;
    int64_t end_ns = 0;
    std::optional<int64_t> completion_start_ns;
    Level level = Level::kDefault;
    std::string status_message;  // empty when none

    // The request's messages as JSON text, absent under Privacy Mode: the record's own text, or
    // a note when it is larger than Langfuse accepts.
    std::optional<std::string_view> input_json() const {
        if (input_text != nullptr) return std::string_view(*input_text);
        if (!input_note.empty()) return std::string_view(input_note);
        return std::nullopt;
    }
    const std::string* input_text = nullptr;
    std::string input_note;
};

Mapped Map(const trace::TraceRecord& record, bool privacy_mode);
Mapped Map(const trace::TraceRecord&& record, bool privacy_mode) = delete;

// OTLP/JSON ExportTraceServiceRequest for a batch (one generation, and a span when asked, per
// record; trace attributes on every span; environment and release also on the resource).
std::string EncodeOtlp(const std::vector<trace::RecordPtr>& batch, bool privacy_mode);

// Legacy /api/public/ingestion batch: trace-create, span-create (when asked) and
// generation-create per record, with event ids derived from the generation id so that a retry
// resends identical ids. `event_owner[i]` is the batch index of the record behind event i.
struct IngestionBatch {
    std::string body;
    std::vector<std::pair<std::string, size_t>> event_owner;  // event id -> record index
};
// The ids of the legacy events a record encodes to (trace, span, generation).
std::vector<std::string> EventIds(const std::string& generation_id);

// `already_accepted` leaves out events Langfuse took in an earlier partial (207) answer, so a
// retry offers only the events that failed.
IngestionBatch EncodeIngestion(
    const std::vector<trace::RecordPtr>& batch, bool privacy_mode,
    const std::function<bool(const std::string&)>& already_accepted = {});

}  // namespace beacon::broadcast::langfuse
