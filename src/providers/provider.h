// The Provider interface: one upstream attempt for one model. Adapters translate Beacon's
// request into the upstream's wire format and the answer back into OpenAI's shapes
// (chat.completion / chat.completion.chunk objects); the gateway does everything else
// (ids, model names, cost, fallback, SSE to the client, the trace).
//
// A new provider is a folder here plus one line in registry.cc.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <optional>
#include <string>

#include "api/chat_request.h"
#include "base/cancel.h"
#include "base/result.h"
#include "providers/catalog.h"

namespace beacon::providers {

// Why an attempt failed, in terms the fallback logic and the error mapping need.
struct AttemptError {
    enum class Kind {
        kConnect,    // DNS, TCP or TLS: nothing reached the provider
        kTimeout,    // connect, first byte or total timeout
        kHttp,       // the provider answered with an error status (http_status)
        kStream,     // the provider reported an error inside a stream
        kProtocol,   // the answer was not what the protocol promises
        kCancelled,  // our client went away
    };
    Kind kind = Kind::kProtocol;
    int http_status = 0;  // for kHttp / kStream (the error's code, when numeric)
    std::string message;  // safe to show to the client
    std::string raw;      // the upstream's error body, for error.metadata.raw
    std::optional<int> retry_after_seconds;

    // Connect errors, timeouts, 408, 429 and 5xx move on to the next fallback model.
    bool Retryable() const;
};

// Receives the chunks of a streamed answer, in order.
class ChunkSink {
  public:
    virtual ~ChunkSink() = default;
    // `chunk` is an OpenAI chat.completion.chunk object. Returns false when the client is gone;
    // the provider then stops reading.
    virtual boost::asio::awaitable<bool> OnChunk(boost::json::object chunk) = 0;
};

struct Call {
    const api::ChatRequest& request;
    const ModelEntry& model;
    base::Canceller& cancel;  // aborts the attempt's I/O when the client goes away
    // Where Complete makes the answer's DOM (the call's arena: base/json_arena.h).
    boost::json::storage_ptr storage = {};
};

class Provider {
  public:
    virtual ~Provider() = default;

    virtual const std::string& name() const = 0;
    // The name clients see in `provider` (e.g. "OpenAI").
    virtual const std::string& display_name() const = 0;

    // One non-streaming attempt: an OpenAI chat.completion object.
    virtual boost::asio::awaitable<Result<boost::json::object, AttemptError>> Complete(
        const Call& call) = 0;

    // One streaming attempt: every chunk goes to `sink`; returns when the stream ends.
    virtual boost::asio::awaitable<Result<bool, AttemptError>> Stream(const Call& call,
                                                                      ChunkSink& sink) = 0;
};

}  // namespace beacon::providers
