// TraceRecord: everything Broadcast needs to know about one finished chat completion (answered,
// failed, rejected after authentication, or cancelled). Built once by the gateway when the
// request ends, then shared read-only (std::shared_ptr<const TraceRecord>) by every destination;
// large bodies are held once, never copied per destination.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/chat_request.h"
#include "api/usage.h"

namespace beacon::trace {

struct ToolCall {
    std::string id;
    std::string type = "function";
    std::string name;
    std::string arguments;
};

// One upstream attempt (fallback keeps several).
struct Attempt {
    std::string model;     // catalog id
    std::string provider;  // display name
    int status = 0;        // upstream HTTP status; 0 when none was received
    std::string error;     // upstream or network error text; empty on success (may hold content)
    double latency_ms = 0;
};

enum class Outcome {
    kOk,         // answered
    kFailed,     // every attempt failed (upstream error, timeout...)
    kRejected,   // refused after authentication (bad request, unknown model)
    kCancelled,  // the client went away
};

struct TraceRecord {
    // Who and what.
    std::string generation_id;
    std::string workspace_id;
    std::string api_key_id;
    std::string api_key_name;
    std::string user;
    std::string session_id;
    api::TraceOptions trace;  // the request's `trace` object

    // The model that answered (or, when none did, the first one asked for) and its provider.
    std::string model;
    std::string provider;
    // The sampling fields present in the request, and stream, as the text of a JSON object
    // (written once here, then copied into every destination's encoding as it is).
    std::string model_parameters_json = "{}";
    bool streamed = false;

    // Content (dropped by Privacy Mode): the request's messages as JSON text, the answer.
    std::string input_json;
    std::string output_text;
    std::string reasoning;
    std::vector<ToolCall> tool_calls;

    std::string finish_reason;         // normalised
    std::string native_finish_reason;  // as the provider said it
    api::Usage usage;
    api::Cost cost;

    // Times, nanoseconds since the Unix epoch.
    int64_t start_ns = 0;
    int64_t end_ns = 0;
    std::optional<int64_t> first_token_ns;

    Outcome outcome = Outcome::kOk;
    int status = 200;        // what the client got (499 for cancelled)
    std::string error_type;  // stable code, e.g. "provider_unavailable"; no content
    std::string error;       // message returned to the client (may quote upstream text)
    std::vector<Attempt> attempts;
};

using RecordPtr = std::shared_ptr<const TraceRecord>;

// Where finished records go. Submit must never block or fail the request.
class RecordSink {
  public:
    virtual ~RecordSink() = default;
    // Called on an I/O thread once per finished request.
    virtual void Submit(RecordPtr record) = 0;
};

// Content larger than this is not kept for Broadcast (Langfuse caps events near 1 MB): the
// record holds a short note with the original size instead, so queues stay small.
inline constexpr size_t kMaxContentBytes = 1024 * 1024;

// What stands in for content of `bytes` bytes, over what Langfuse accepts.
std::string TooLargeNote(size_t bytes);

// Applies kMaxContentBytes to the input, output and reasoning of `record`.
void CapContent(TraceRecord& record);

// The sampling parameters of a request worth showing with the generation, as a JSON object's
// text.
std::string ModelParametersJson(const boost::json::object& request_body, bool stream);

}  // namespace beacon::trace
