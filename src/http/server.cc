#include "http/server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <list>
#include <optional>

#include "base/log.h"
#include "http/head.h"
#include "http/io.h"

namespace beacon::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);

std::string QueryParam(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        auto eq = pair.find('=');
        std::string_view key = pair.substr(0, eq);
        if (key == name) {
            std::string_view raw = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
            std::string out;
            // '+' means space in form encoding; %XX is decoded, a malformed escape kept as is.
            auto hex = [](char c) -> int {
                if (c >= '0' && c <= '9') return c - '0';
                if (c >= 'a' && c <= 'f') return c - 'a' + 10;
                if (c >= 'A' && c <= 'F') return c - 'A' + 10;
                return -1;
            };
            for (size_t i = 0; i < raw.size(); ++i) {
                if (raw[i] == '+') {
                    out.push_back(' ');
                } else if (raw[i] == '%' && i + 2 < raw.size() && hex(raw[i + 1]) >= 0 &&
                           hex(raw[i + 2]) >= 0) {
                    out.push_back(static_cast<char>(hex(raw[i + 1]) * 16 + hex(raw[i + 2])));
                    i += 2;
                } else {
                    out.push_back(raw[i]);
                }
            }
            return out;
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

namespace {

struct SessionState {
    beast::tcp_stream* stream = nullptr;
    bool busy = false;
    // While a request is being read (or awaited on a kept-alive connection): when the worker's
    // sweep closes the connection if the request is not all there (see SweepIdle).
    std::chrono::steady_clock::time_point read_deadline =
        std::chrono::steady_clock::time_point::max();
};

// How often a worker looks for connections past their read deadline. Beast's own per-operation
// timeout armed a timer for every request read and cancelled it when the request came: a
// `timerfd_settime` (the timer was the earliest one at low load) and a posted completion (a
// turn of the event loop, an `epoll_wait`) per request. The sweep costs a few wake-ups a second
// per thread instead, and, being the earliest timer, keeps the per-request timers of the
// upstream calls (first byte, whole call: seconds) from reprogramming the kernel's timer.
constexpr std::chrono::milliseconds kSweepTick{200};

class ExchangeImpl final : public Exchange {
  public:
    ExchangeImpl(beast::tcp_stream& stream, bhttp::request<bhttp::string_body>& req,
                 std::chrono::milliseconds write_timeout, bool closing)
        : stream_(stream),
          req_(req),
          write_timeout_(write_timeout),
          write_turn_(stream.get_executor(), asio::steady_timer::time_point::max()),
          keep_alive_(req.keep_alive() && !closing) {
        auto t = req_.target();
        target_ = std::string_view(t.data(), t.size());
        auto q = target_.find('?');
        path_ = target_.substr(0, q);
        if (q != std::string_view::npos) query_ = target_.substr(q + 1);
    }

    std::string_view method() const override {
        auto m = req_.method_string();
        return {m.data(), m.size()};
    }
    std::string_view target() const override { return target_; }
    std::string_view path() const override { return path_; }
    std::string_view query() const override { return query_; }
    std::string_view header(std::string_view name) const override {
        auto it = req_.find(beast::string_view(name.data(), name.size()));
        if (it == req_.end()) return {};
        return {it->value().data(), it->value().size()};
    }
    const std::string& body() const override { return req_.body(); }
    asio::any_io_executor executor() override { return stream_.get_executor(); }

    asio::awaitable<void> Respond(int status, std::string_view content_type, std::string body,
                                  Headers extra) override {
        if (responded_ || client_gone_) co_return;
        responded_ = true;
        status_ = status;
        std::string head;
        head.reserve(192);
        const bool has_body = StatusHasBody(status);
        const size_t length = has_body ? body.size() : 0;
        AppendResponseHead(head, {.status = status,
                                  .version = req_.version(),
                                  .keep_alive = keep_alive_,
                                  .content_type = content_type,
                                  .cache_control = {},
                                  .extra = &extra,
                                  .content_length = length});
        if (!has_body) body.clear();
        if (writing_) co_await WaitForWriteTurn();
        writing_ = true;
        stream_.expires_after(write_timeout_);
        const std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(body)};
        const auto ec = co_await io::WriteAll(stream_, out);
        ReleaseWrite();
        if (ec) client_gone_ = true;
    }

    asio::awaitable<bool> StartStream(int status, std::string_view content_type,
                                      Headers extra) override {
        if (responded_ || client_gone_) co_return false;
        responded_ = true;
        status_ = status;
        streaming_ = true;
        // The head goes out with the first chunk (or the end): one write, one wake-up of the
        // client before the first token instead of two.
        AppendResponseHead(pending_head_, {.status = status,
                                           .version = req_.version(),
                                           .keep_alive = keep_alive_,
                                           .content_type = content_type,
                                           .cache_control = "no-cache",
                                           .extra = &extra,
                                           .content_length = std::nullopt});
        co_return !client_gone_;
    }

    asio::awaitable<bool> WriteChunk(std::string data) override {
        // Nothing may follow the last chunk: a late write would corrupt the next response.
        if (!streaming_ || stream_ended_ || client_gone_ || data.empty()) co_return !client_gone_;
        if (writing_) co_await WaitForWriteTurn();
        writing_ = true;
        if (client_gone_ || stream_ended_) {
            ReleaseWrite();
            co_return !client_gone_;
        }
        stream_.expires_after(write_timeout_);
        const std::string head = std::exchange(pending_head_, {});
        const auto ec = co_await io::WriteAll(
            stream_, beast::buffers_cat(asio::buffer(head), bhttp::make_chunk(asio::buffer(data))));
        ReleaseWrite();
        if (ec) client_gone_ = true;
        co_return !client_gone_;
    }

    asio::awaitable<void> EndStream() override {
        if (!streaming_ || stream_ended_ || client_gone_) co_return;
        stream_ended_ = true;
        if (writing_) co_await WaitForWriteTurn();
        writing_ = true;
        stream_.expires_after(write_timeout_);
        const std::string head = std::exchange(pending_head_, {});
        const auto ec = co_await io::WriteAll(
            stream_, beast::buffers_cat(asio::buffer(head), bhttp::make_chunk_last()));
        ReleaseWrite();
        if (ec) client_gone_ = true;
    }

    asio::awaitable<bool> WaitClientGone() override {
        auto& socket = stream_.socket();
        for (;;) {
            auto [ec] = co_await socket.async_wait(tcp::socket::wait_read, kTuple);
            if (ec) co_return false;  // cancelled: the request finished first
            const Readable what = PeekReadable();
            if (what == Readable::kGone) {
                client_gone_ = true;
                co_return true;
            }
            if (what == Readable::kData) break;  // pipelined bytes: nothing more to learn
        }
        asio::steady_timer forever(stream_.get_executor(), asio::steady_timer::time_point::max());
        co_await forever.async_wait(kTuple);
        co_return false;
    }

    void WatchClientGone(std::function<void()> on_gone) override {
        StopWatching();
        watch_ = std::make_shared<Watch>();
        watch_->on_gone = std::move(on_gone);
        ArmWatch(watch_);
    }

    void StopWatching() override {
        if (!watch_) return;
        watch_->active = false;
        watch_->stop.emit(asio::cancellation_type::all);
        watch_.reset();
    }

    ~ExchangeImpl() override { StopWatching(); }

    bool responded() const override { return responded_; }
    int status() const override { return status_; }
    bool client_gone() const override { return client_gone_; }
    bool streaming_open() const { return streaming_ && !stream_ended_; }
    bool keep_alive() const { return keep_alive_; }

  private:
    // What a readable client socket holds: the client closed it (or it failed), it sent more
    // bytes, or nothing after all (a spurious wake-up).
    enum class Readable { kGone, kData, kNothing };
    Readable PeekReadable() {
        char c;
        const ssize_t n = ::recv(stream_.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return Readable::kData;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return Readable::kNothing;
        }
        return Readable::kGone;
    }

    // Shared with the pending wait, whose handler may run after the exchange is gone: it acts
    // only while `active`, and the exchange clears that before it goes.
    struct Watch {
        std::function<void()> on_gone;
        asio::cancellation_signal stop;
        bool active = true;
    };

    void ArmWatch(const std::shared_ptr<Watch>& watch) {
        stream_.socket().async_wait(
            tcp::socket::wait_read,
            asio::bind_cancellation_slot(watch->stop.slot(),
                                         [this, watch](const boost::system::error_code& ec) {
                                             // `this` may be gone: only an active watch uses it.
                                             if (watch->active) OnWatchReadable(watch, ec);
                                         }));
    }

    void OnWatchReadable(const std::shared_ptr<Watch>& watch, const boost::system::error_code& ec) {
        if (ec) {
            watch->active = false;
            return;
        }
        const Readable what = PeekReadable();
        if (what == Readable::kNothing) {
            ArmWatch(watch);  // woken without data: wait again
            return;
        }
        watch->active = false;
        if (what == Readable::kData) return;  // pipelined bytes: nothing to learn
        client_gone_ = true;
        auto on_gone = std::move(watch->on_gone);
        if (on_gone) on_gone();
    }

    // Serialises writes: a writer that finds `writing_` set waits here, then sets it. The timer
    // never expires; cancel() wakes every waiter, which re-checks. (Not a coroutine of its own
    // in the common case: most writes find the turn free.)
    asio::awaitable<void> WaitForWriteTurn() {
        while (writing_) co_await write_turn_.async_wait(kTuple);
    }
    void ReleaseWrite() {
        writing_ = false;
        write_turn_.cancel();
    }

    beast::tcp_stream& stream_;
    bhttp::request<bhttp::string_body>& req_;
    std::chrono::milliseconds write_timeout_;
    asio::steady_timer write_turn_;
    std::string_view target_, path_, query_;
    bool keep_alive_;
    bool writing_ = false;
    bool responded_ = false;
    int status_ = 0;
    bool streaming_ = false;
    bool stream_ended_ = false;
    std::string pending_head_;  // a stream's head, not written yet (see StartStream)
    bool client_gone_ = false;
    std::shared_ptr<Watch> watch_;  // WatchClientGone's, while it watches
};

std::string SimpleError(int status, std::string_view message) {
    std::string body = R"({"error":{"code":)" + std::to_string(status) + R"(,"message":")";
    body.append(message);  // callers pass constant, JSON-safe text
    body.append("\"}}");
    return body;
}

}  // namespace

struct Server::Worker {
    // Declared first, destroyed last: destroying `ioc` destroys the suspended session
    // coroutines, whose guards unregister themselves from this list.
    std::list<SessionState*> sessions;  // touched only on this worker's thread
    bool stopping = false;
    asio::io_context ioc{1};
    std::optional<tcp::acceptor> acceptor;
};

Server::Server(ServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

Server::~Server() { Stop(); }

namespace {

// Writes a short error and closes, reading (and discarding) what the client still sends for a
// moment so that it sees our answer rather than a connection reset.
asio::awaitable<void> RejectAndClose(SessionState& state, beast::flat_buffer& buffer, int status,
                                     std::string_view message) {
    // Its own timeouts below; the sweep must not cut the answer short.
    state.read_deadline = std::chrono::steady_clock::time_point::max();
    beast::tcp_stream& stream = *state.stream;
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
    res.set(bhttp::field::server, "beacon");
    res.set(bhttp::field::content_type, "application/json");
    res.keep_alive(false);
    res.body() = SimpleError(status, message);
    res.prepare_payload();
    stream.expires_after(std::chrono::seconds(5));
    auto [ec, n] = co_await bhttp::async_write(stream, res, kTuple);
    if (ec) co_return;
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.expires_after(std::chrono::seconds(2));
    size_t drained = 0;
    for (;;) {
        buffer.consume(buffer.size());
        auto [rec, rn] = co_await stream.async_read_some(buffer.prepare(64 * 1024), kTuple);
        if (rec) break;
        drained += rn;
        if (drained > 256 * 1024 * 1024) break;
    }
}

asio::awaitable<void> Session(Server::Worker* worker, tcp::socket socket,
                              const ServerOptions* options, const Handler* handler,
                              std::shared_ptr<std::atomic<int64_t>> in_flight) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    // Beast reads max(512, free capacity) bytes at a time: with room up front a typical chat
    // request is one recv instead of three or more.
    buffer.reserve(8 * 1024);
    SessionState state{&stream, false};
    worker->sessions.push_back(&state);
    // Unregistered however the coroutine ends, so StopAccepting never sees a dead session.
    struct Unregister {
        std::list<SessionState*>& list;
        std::list<SessionState*>::iterator self;
        ~Unregister() { list.erase(self); }
    } unregister{worker->sessions, std::prev(worker->sessions.end())};

    for (bool answered = false;; answered = true) {
        // The next request follows our answer: see io.h.
        if (answered && buffer.size() == 0) co_await io::LetOthersRun();
        if (worker->stopping) break;
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(options->max_header_bytes);
        parser.body_limit(options->max_body_bytes);
        // The whole request, head and body, must arrive within the idle timeout (SweepIdle);
        // a write's timeout must not carry over to this read.
        stream.expires_never();
        state.read_deadline = std::chrono::steady_clock::now() + options->idle_timeout;
        auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
        // operation_aborted: the sweep (the request did not come in time) or a shutdown.
        if (ec == bhttp::error::end_of_stream || ec == asio::error::operation_aborted ||
            ec == asio::error::connection_reset || ec == asio::error::eof) {
            break;
        }
        if (ec == bhttp::error::header_limit) {
            co_await RejectAndClose(state, buffer, 431, "request headers are too large");
            break;
        }
        if (ec == bhttp::error::body_limit) {
            co_await RejectAndClose(state, buffer, 413, "request body is too large");
            break;
        }
        if (ec) {
            co_await RejectAndClose(state, buffer, 400, "malformed HTTP request");
            break;
        }
        if (auto expect = parser.get()[bhttp::field::expect];
            beast::iequals(expect, "100-continue")) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(kContinue), kTuple);
            if (wec) break;
        }
        auto bec = io::ParseBuffered(parser, buffer);
        if (!bec && !parser.is_done()) {
            auto [rec, bn] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
            bec = rec;
        }
        if (bec == bhttp::error::body_limit) {
            co_await RejectAndClose(state, buffer, 413, "request body is too large");
            break;
        }
        if (bec) {
            // A shutdown or the sweep cancelling an upload is not the client's fault: close
            // quietly (the client retries elsewhere) instead of calling its request malformed.
            if (bec != bhttp::error::end_of_stream && bec != asio::error::connection_reset &&
                bec != asio::error::operation_aborted) {
                co_await RejectAndClose(state, buffer, 400, "malformed HTTP request body");
            }
            break;
        }
        state.read_deadline = std::chrono::steady_clock::time_point::max();
        state.busy = true;
        in_flight->fetch_add(1);
        auto req = parser.release();
        bool keep_alive = false;
        bool gone = false;
        {
            ExchangeImpl exchange(stream, req, options->idle_timeout, worker->stopping);
            try {
                co_await (*handler)(exchange);
            } catch (const std::exception& e) {
                spdlog::error("unhandled error in request handler: {}", e.what());
            }
            if (!exchange.responded()) {
                co_await exchange.Respond(500, "application/json",
                                          SimpleError(500, "internal error"), {});
            } else if (exchange.streaming_open()) {
                co_await exchange.EndStream();
            }
            keep_alive = exchange.keep_alive();
            gone = exchange.client_gone();
        }
        in_flight->fetch_sub(1);
        state.busy = false;
        if (!keep_alive || gone) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.close();
}

// Cancels the reads of the sessions that are not answering and whose request did not arrive in
// time (a kept-alive connection left idle and a request sent too slowly alike), or all of them
// once the server stops accepting. Their pending read ends with operation_aborted, and the
// session closes quietly. On the worker's thread, like the sessions it looks at.
void CancelOverdueReads(Server::Worker* worker) {
    const auto now = std::chrono::steady_clock::now();
    for (auto* s : worker->sessions) {
        if (!s->busy && (worker->stopping || now >= s->read_deadline)) s->stream->cancel();
    }
}

asio::awaitable<void> SweepIdle(Server::Worker* worker, std::chrono::milliseconds idle_timeout) {
    asio::steady_timer timer(worker->ioc);
    const auto tick = std::clamp<std::chrono::milliseconds>(
        idle_timeout / 4, std::chrono::milliseconds(10), kSweepTick);
    // Once the server stops accepting, every session that is not answering is cancelled at each
    // tick: StopAccepting's one cancel misses a read that is between two of Beast's steps.
    while (!(worker->stopping && worker->sessions.empty())) {
        timer.expires_after(tick);
        auto [ec] = co_await timer.async_wait(kTuple);
        if (ec) break;
        CancelOverdueReads(worker);
    }
}

asio::awaitable<void> AcceptLoop(Server::Worker* worker, const ServerOptions* options,
                                 const Handler* handler,
                                 std::shared_ptr<std::atomic<int64_t>> in_flight) {
    for (;;) {
        auto [ec, socket] = co_await worker->acceptor->async_accept(kTuple);
        if (ec == asio::error::operation_aborted || !worker->acceptor->is_open()) break;
        if (ec) {
            // Out of descriptors and the like: back off instead of spinning.
            spdlog::warn("accept failed: {}", ec.message());
            asio::steady_timer pause(worker->ioc, std::chrono::milliseconds(50));
            co_await pause.async_wait(kTuple);
            continue;
        }
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        asio::co_spawn(worker->ioc, Session(worker, std::move(socket), options, handler, in_flight),
                       asio::detached);
    }
}

}  // namespace

Result<uint16_t> Server::Start() {
    boost::system::error_code ec;
    auto address =
        asio::ip::make_address(options_.host == "localhost" ? "127.0.0.1" : options_.host, ec);
    if (ec) return Error{"listen: \"" + options_.host + "\" is not an IP address"};
    uint16_t port = options_.port;
    const int threads = std::max(1, options_.threads);
    for (int i = 0; i < threads; ++i) {
        auto worker = std::make_unique<Worker>();
        auto& acceptor = worker->acceptor.emplace(worker->ioc);
        tcp::endpoint endpoint(address, port);
        acceptor.open(endpoint.protocol(), ec);
        if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) {
            using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
            acceptor.set_option(reuse_port(true), ec);
        }
        if (!ec) acceptor.bind(endpoint, ec);
        if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            return Error{"cannot listen on " + options_.host + ":" + std::to_string(port) + ": " +
                         ec.message()};
        }
        port = acceptor.local_endpoint().port();
        workers_.push_back(std::move(worker));
    }
    for (auto& w : workers_) {
        asio::co_spawn(w->ioc, AcceptLoop(w.get(), &options_, &handler_, in_flight_),
                       asio::detached);
        asio::co_spawn(w->ioc, SweepIdle(w.get(), options_.idle_timeout), asio::detached);
        threads_.emplace_back([worker = w.get()] {
            base::NameThisThread("beacon-http");
            worker->ioc.run();
        });
    }
    return port;
}

void Server::StopAccepting() {
    for (auto& w : workers_) {
        asio::post(w->ioc, [worker = w.get()] {
            worker->stopping = true;
            boost::system::error_code ignored;
            if (worker->acceptor) worker->acceptor->close(ignored);
            CancelOverdueReads(worker);
        });
    }
}

bool Server::WaitIdle(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (in_flight_->load() > 0) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

void Server::Stop() {
    for (auto& w : workers_) w->ioc.stop();
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
    threads_.clear();
}

}  // namespace beacon::http
