// The HTTP/1.1 front: one io_context per thread, each with its own SO_REUSEPORT acceptor, so a
// connection lives on one thread from accept to close and needs no locks. Keep-alive, limits
// on header and body size, idle timeouts, TCP_NODELAY, and a graceful stop.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "http/exchange.h"

namespace beacon::http {

struct ServerOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 8080;
    int threads = 1;
    uint64_t max_body_bytes = 16 * 1024 * 1024;
    uint32_t max_header_bytes = 64 * 1024;
    std::chrono::milliseconds idle_timeout{60000};
};

using Handler = std::function<boost::asio::awaitable<void>(Exchange&)>;

class Server {
  public:
    Server(ServerOptions options, Handler handler);
    ~Server();

    // Binds and starts the I/O threads. Returns the bound port (useful with port 0).
    Result<uint16_t> Start();

    // Stops accepting and closes idle keep-alive connections; requests in flight go on, and
    // their connections close when they finish.
    void StopAccepting();

    // Waits until no request is in flight or the deadline passes; true when idle.
    bool WaitIdle(std::chrono::milliseconds deadline);

    // Stops the I/O threads (in-flight work is abandoned) and joins them.
    void Stop();

    int64_t in_flight() const { return in_flight_->load(); }

    struct Worker;  // one thread's io_context, acceptor and sessions (server.cc)

  private:
    ServerOptions options_;
    Handler handler_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::thread> threads_;
    std::shared_ptr<std::atomic<int64_t>> in_flight_ = std::make_shared<std::atomic<int64_t>>(0);
};

}  // namespace beacon::http
