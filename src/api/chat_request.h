// The chat completions request: parsed once, validated, and kept as a JSON object so that the
// provider adapters can forward every field they do not need to understand.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace beacon::api {

// The request's `trace` object (OpenRouter's TraceConfig). Known keys shape the trace; every
// other key is custom metadata, kept in request order with its JSON value.
struct TraceOptions {
    bool present = false;
    std::string trace_id;
    std::string trace_name;
    std::string span_name;
    std::string generation_name;
    std::string parent_span_id;
    std::vector<std::pair<std::string, boost::json::value>> extra;
};

struct ChatRequest {
    ChatRequest() = default;
    // `body` made in `storage`, so that moving a body parsed there into it takes it whole.
    explicit ChatRequest(boost::json::storage_ptr storage) : body(std::move(storage)) {}

    boost::json::object body;  // the request as received (validated)
    // `messages` as JSON text, written once: it is forwarded upstream as it is and kept as the
    // trace's input. Empty without messages (a legacy `prompt` request).
    std::string messages_json;
    std::string model;  // may be empty: the configured default applies
    std::vector<std::string> models;
    bool stream = false;
    std::string user;
    std::string session_id;
    TraceOptions trace;
};

// Limits from OpenRouter's documentation.
inline constexpr size_t kMaxUserLength = 128;
inline constexpr size_t kMaxSessionIdLength = 256;
inline constexpr size_t kMaxTraceStringLength = 1024;

// Parses and validates a request body. On failure the error message names the field, e.g.
// "temperature: expected a number between 0 and 2"; the caller answers 400 with it.
// `body` is made in `storage` (a request's arena: base/json_arena.h); the trace's custom values
// are not, since the trace record outlives the request.
Result<ChatRequest> ParseChatRequest(std::string_view body, boost::json::storage_ptr storage = {});

// Validates an `x-session-id` header value; empty optional when valid.
std::optional<std::string> ValidateSessionId(std::string_view value);

}  // namespace beacon::api
