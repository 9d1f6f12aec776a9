// One HTTP request and its response, as the application sees them. Implemented by the server
// (server.cc) over Beast; handlers never touch Beast types, which keeps them quick to compile
// and easy to drive from tests.
//
// Lifecycle: the server creates an Exchange per request, calls the handler on the connection's
// io_context thread, and ends the response (or answers 500) if the handler did not.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace beacon::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

class Exchange {
  public:
    virtual ~Exchange() = default;

    virtual std::string_view method() const = 0;
    virtual std::string_view target() const = 0;  // path and query
    virtual std::string_view path() const = 0;
    virtual std::string_view query() const = 0;                        // without '?'
    virtual std::string_view header(std::string_view name) const = 0;  // empty if absent
    virtual const std::string& body() const = 0;
    virtual boost::asio::any_io_executor executor() = 0;

    // A whole response. Returns after it is written (or the client is gone).
    virtual boost::asio::awaitable<void> Respond(int status, std::string_view content_type,
                                                 std::string body, Headers extra = {}) = 0;

    // A streamed (chunked) response. Writes are serialised: two coroutines may write
    // concurrently (data and keep-alive comments) and each awaits its turn. Each returns false
    // once the client is gone.
    virtual boost::asio::awaitable<bool> StartStream(int status, std::string_view content_type,
                                                     Headers extra = {}) = 0;
    virtual boost::asio::awaitable<bool> WriteChunk(std::string data) = 0;
    virtual boost::asio::awaitable<void> EndStream() = 0;

    // Completes with true when the client closes its connection; with false when it cannot
    // tell (the client sent more bytes, e.g. a pipelined request) or when cancelled.
    virtual boost::asio::awaitable<bool> WaitClientGone() = 0;

    // The same without a coroutine, for whole answers: `on_gone` is called once, on the
    // connection's thread, if the client closes its connection before StopWatching() (which
    // the exchange's destructor also calls). A second call replaces the first watch.
    virtual void WatchClientGone(std::function<void()> on_gone) = 0;
    virtual void StopWatching() = 0;

    virtual bool responded() const = 0;  // a response head was written
    virtual int status() const = 0;      // its status; 0 before
    virtual bool client_gone() const = 0;
};

// Query string lookup: the decoded value of `name` in "a=1&b=2", empty if absent.
std::string QueryParam(std::string_view query, std::string_view name);

}  // namespace beacon::http
