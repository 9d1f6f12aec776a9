// The outgoing HTTP/1.1 client for upstream providers (and later, Broadcast destinations):
// http and https (certificate and host name verified, SNI), keep-alive connections pooled per
// thread and origin, separate connect / first-byte / total timeouts, cancellation, and a body
// that can be read piece by piece for streams.
//
// Thread model: call from any io_context; idle connections are pooled per io_context (an Asio
// service), so a pooled socket never outlives the context it belongs to.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "base/cancel.h"
#include "base/result.h"
#include "http/exchange.h"

namespace beacon::http {

struct ClientError {
    enum class Kind { kBadUrl, kDns, kConnect, kTls, kTimeout, kProtocol, kCancelled };
    Kind kind = Kind::kProtocol;
    std::string message;
};

std::string_view ClientErrorKindName(ClientError::Kind kind);

struct ClientRequest {
    std::string method = "POST";
    std::string url;
    Headers headers;
    std::string body;
};

struct ClientTimeouts {
    std::chrono::milliseconds connect{5000};      // DNS, TCP and TLS
    std::chrono::milliseconds first_byte{60000};  // from sending to the response head
    std::chrono::milliseconds total{600000};      // the whole exchange
};

class ClientResponse {
  public:
    virtual ~ClientResponse() = default;
    virtual int status() const = 0;
    virtual std::string_view header(std::string_view name) const = 0;
    // The next piece of the body, decoded from chunked transfer if need be; empty at the end.
    virtual boost::asio::awaitable<Result<std::string, ClientError>> Read() = 0;
    // The rest of the body, cut at `limit` bytes.
    boost::asio::awaitable<Result<std::string, ClientError>> ReadAll(size_t limit);
};

// Sends the request and reads the response head. The returned response holds the connection
// until its body is read to the end (then the connection goes back to the pool) or until it is
// destroyed (then the connection is closed). `cancel` closes the connection at once; it must
// outlive the response.
boost::asio::awaitable<Result<std::unique_ptr<ClientResponse>, ClientError>> Send(
    ClientRequest request, ClientTimeouts timeouts, base::Canceller& cancel);

}  // namespace beacon::http
