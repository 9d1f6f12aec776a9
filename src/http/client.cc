#include "http/client.h"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <limits>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "http/head.h"
#include "http/io.h"

namespace beacon::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kPoolIdleLimit = std::chrono::seconds(30);
// Idle connections kept per origin and thread: as many as a thread has requests in flight under
// heavy load, so that a burst does not close connections the next burst opens again (at 64,
// 256 concurrent requests opened a provider connection every seventh request).
constexpr size_t kPoolMaxPerOrigin = 256;

ssl::context& TlsContext() {
    static ssl::context* ctx = [] {
        auto* c = new ssl::context(ssl::context::tls_client);
        c->set_default_verify_paths();
        c->set_verify_mode(ssl::verify_peer);
        c->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        return c;
    }();
    return *ctx;
}

struct Origin {
    bool tls = false;
    std::string host;
    std::string port;
    std::string target;
    std::string host_header;  // as the URL wrote it: brackets and a non-default port kept
    std::string key;          // the pool's: scheme, host and port
};

Result<Origin, ClientError> ParseUrl(const std::string& url) {
    auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) return ClientError{ClientError::Kind::kBadUrl, "bad URL: " + url};
    Origin o;
    if (parsed->scheme() == "https") {
        o.tls = true;
    } else if (parsed->scheme() != "http") {
        return ClientError{ClientError::Kind::kBadUrl, "unsupported URL scheme in " + url};
    }
    o.host = std::string(parsed->encoded_host());
    if (o.host.size() > 2 && o.host.front() == '[') o.host = o.host.substr(1, o.host.size() - 2);
    if (o.host.empty()) return ClientError{ClientError::Kind::kBadUrl, "no host in URL " + url};
    o.port = parsed->has_port() ? std::string(parsed->port()) : (o.tls ? "443" : "80");
    o.host_header = std::string(parsed->encoded_host_and_port());
    o.target = std::string(parsed->encoded_path());
    if (o.target.empty()) o.target = "/";
    if (parsed->has_query()) o.target += "?" + std::string(parsed->encoded_query());
    o.key = (o.tls ? "https://" : "http://") + o.host + ":" + o.port;
    return o;
}

// A thread has a handful of upstream URLs; parsing one cost ~4k instructions per request.
// Shared pointers: a suspended Send keeps its origin even if the cache is cleared meanwhile.
Result<std::shared_ptr<const Origin>, ClientError> CachedOrigin(const std::string& url) {
    thread_local std::unordered_map<std::string, std::shared_ptr<const Origin>> cache;
    if (auto it = cache.find(url); it != cache.end()) return it->second;
    auto parsed = ParseUrl(url);
    if (!parsed) return parsed.error();
    if (cache.size() >= 64) cache.clear();
    auto origin = std::make_shared<const Origin>(std::move(parsed.value()));
    cache.emplace(url, origin);
    return origin;
}

constexpr size_t kReadBufferBytes = 16 * 1024;

struct Conn {
    std::string key;
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
    beast::flat_buffer buffer;
    std::chrono::steady_clock::time_point idle_since;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

// Idle connections belong to the io_context whose sockets they are: an Asio service lives and
// dies with its io_context, so no pooled socket outlives the context it is registered with.
// Server workers run one thread per io_context, so the mutex is never contended there.
class Pool final : public asio::execution_context::service {
  public:
    using key_type = Pool;
    static inline asio::execution_context::id id;

    explicit Pool(asio::execution_context& ctx) : service(ctx) {}

    std::unique_ptr<Conn> Take(const std::string& key);
    void Put(std::unique_ptr<Conn> conn);

  private:
    void shutdown() override {
        std::lock_guard lock(mu_);
        shut_down_ = true;
        idle_.clear();
    }

    std::mutex mu_;
    bool shut_down_ = false;  // the io_context is going away: pool nothing more
    std::unordered_map<std::string, std::vector<std::unique_ptr<Conn>>> idle_;
};

Pool& PoolOf(const asio::any_io_executor& ex) {
    return asio::use_service<Pool>(asio::query(ex, asio::execution::context));
}

// An idle keep-alive connection must have nothing to read: readable means the server closed
// it (EOF) or sent something unasked; either way it cannot carry a new request.
bool StillIdle(Conn& conn) {
    auto& socket = conn.lowest().socket();
    if (!socket.is_open()) return false;
    char c;
    ssize_t n = ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::unique_ptr<Conn> Pool::Take(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    auto& idle = it->second;
    const auto now = std::chrono::steady_clock::now();
    while (!idle.empty()) {
        auto conn = std::move(idle.back());
        idle.pop_back();
        // Every reuse is checked, however briefly the connection was idle: a provider that
        // restarts or reloads closes its idle connections at once, under load too, and a
        // request written into one of them fails (it is never sent twice). Session 7 skipped
        // the check below 1 s of idleness, one system call per request, and lost that.
        if (now - conn->idle_since < kPoolIdleLimit && StillIdle(*conn)) return conn;
    }
    return nullptr;
}

void Pool::Put(std::unique_ptr<Conn> conn) {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    auto& idle = idle_[conn->key];
    const auto now = std::chrono::steady_clock::now();
    // Take() reuses the newest, so connections left over from a burst sink to the front: close
    // the expired ones there rather than hold their descriptors until a burst reaches them.
    size_t expired = 0;
    while (expired < idle.size() && now - idle[expired]->idle_since >= kPoolIdleLimit) ++expired;
    idle.erase(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(expired));
    if (idle.size() >= kPoolMaxPerOrigin) return;
    conn->idle_since = now;
    idle.push_back(std::move(conn));
}

ClientError FromNetError(const boost::system::error_code& ec, ClientError::Kind fallback,
                         const base::Canceller& cancel, std::string_view what) {
    if (cancel.cancelled()) return {ClientError::Kind::kCancelled, "cancelled"};
    if (ec == beast::error::timeout)
        return {ClientError::Kind::kTimeout, std::string(what) + " timed out"};
    return {fallback, std::string(what) + ": " + ec.message()};
}

asio::awaitable<Result<std::unique_ptr<Conn>, ClientError>> Connect(const Origin& origin,
                                                                    ClientTimeouts timeouts,
                                                                    base::Canceller& cancel) {
    auto ex = co_await asio::this_coro::executor;
    auto conn = std::make_unique<Conn>();
    conn->key = origin.key;
    // Beast reads max(512, free capacity) bytes at a time: room up front makes a typical
    // response one recv instead of several.
    conn->buffer.reserve(kReadBufferBytes);
    if (origin.tls) {
        conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ex, TlsContext());
    } else {
        conn->plain = std::make_unique<beast::tcp_stream>(ex);
    }
    auto& lowest = conn->lowest();
    cancel.OnCancel([&lowest] { lowest.close(); });

    tcp::resolver resolver(ex);
    lowest.expires_after(timeouts.connect);
    auto [rec, results] = co_await resolver.async_resolve(origin.host, origin.port, kTuple);
    if (cancel.cancelled()) co_return ClientError{ClientError::Kind::kCancelled, "cancelled"};
    if (rec) {
        co_return ClientError{ClientError::Kind::kDns,
                              "cannot resolve " + origin.host + ": " + rec.message()};
    }
    auto [cec, endpoint] = co_await lowest.async_connect(results, kTuple);
    if (cec) {
        co_return FromNetError(cec, ClientError::Kind::kConnect, cancel,
                               "connect to " + origin.host + ":" + origin.port);
    }
    beast::error_code ignored;
    lowest.socket().set_option(tcp::no_delay(true), ignored);
    if (conn->tls) {
        SSL* native = conn->tls->native_handle();
        if (!SSL_set_tlsext_host_name(native, origin.host.c_str())) {
            co_return ClientError{ClientError::Kind::kTls, "cannot set TLS server name"};
        }
        conn->tls->set_verify_callback(ssl::host_name_verification(origin.host));
        auto [hec] = co_await conn->tls->async_handshake(ssl::stream_base::client, kTuple);
        if (hec) {
            co_return FromNetError(hec, ClientError::Kind::kTls, cancel,
                                   "TLS handshake with " + origin.host);
        }
    }
    co_return conn;
}

using Parser = bhttp::response_parser<bhttp::buffer_body>;

// `head` and `body` go out in one gather write (see head.h); on a plain connection, at once when
// the socket takes them (see io.h).
template <class Stream>
asio::awaitable<boost::system::error_code> WriteAndReadHead(Stream& stream, const std::string& head,
                                                            const std::string& body,
                                                            beast::flat_buffer& buffer,
                                                            Parser& parser) {
    const std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(body)};
    boost::system::error_code wec;
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
        wec = co_await io::WriteAll(stream, out);
        if (!wec) co_await io::LetOthersRun();
    } else {
        auto [ec, n] = co_await asio::async_write(stream, out, kTuple);
        wec = ec;
    }
    if (wec) co_return wec;
    auto [rec, rn] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
    co_return rec;
}

template <class Stream>
asio::awaitable<boost::system::error_code> ReadSome(Stream& stream, beast::flat_buffer& buffer,
                                                    Parser& parser) {
    auto [ec, n] = co_await bhttp::async_read_some(stream, buffer, parser, kTuple);
    co_return ec;
}

class ResponseImpl final : public ClientResponse {
  public:
    ResponseImpl(std::unique_ptr<Conn> conn, std::unique_ptr<Parser> parser,
                 std::chrono::steady_clock::time_point deadline, base::Canceller& cancel)
        : conn_(std::move(conn)),
          parser_(std::move(parser)),
          deadline_(deadline),
          cancel_(cancel) {}

    // A caller that stops reading at the end of the content (a stream's [DONE]) usually has the
    // rest of the message, the last chunk, already received: parse it, so the connection goes
    // back to the pool instead of being closed.
    ~ResponseImpl() override {
        if (conn_ && !parser_->is_done() && conn_->buffer.size() > 0) ParseBuffered();
        Finish();
        cancel_.Clear();
    }

    int status() const override { return static_cast<int>(parser_->get().result_int()); }

    std::string_view header(std::string_view name) const override {
        const auto& h = parser_->get();
        auto it = h.find(beast::string_view(name.data(), name.size()));
        if (it == h.end()) return {};
        return {it->value().data(), it->value().size()};
    }

    asio::awaitable<Result<std::string, ClientError>> Read() override {
        for (;;) {
            if (!conn_ || parser_->is_done()) {
                Finish();
                co_return std::string();
            }
            auto& body = parser_->get().body();
            body.data = buf_;
            body.size = sizeof(buf_);
            // What came with the head (a stream's first events, often a whole answer) or with
            // the last read is parsed without a turn of the event loop (see io.h); the socket
            // is read only when that made no progress.
            const size_t buffered = conn_->buffer.size();
            boost::system::error_code ec = io::ParseBuffered(*parser_, conn_->buffer);
            const bool progress = conn_->buffer.size() < buffered || parser_->is_done();
            if (!ec && !progress) {
                conn_->lowest().expires_at(deadline_);
                if (conn_->tls) {
                    ec = co_await ReadSome(*conn_->tls, conn_->buffer, *parser_);
                } else {
                    ec = co_await ReadSome(*conn_->plain, conn_->buffer, *parser_);
                }
                if (ec == bhttp::error::need_buffer) ec = {};
            }
            if (ec) {
                cancel_.Clear();  // the action points into the connection
                conn_.reset();
                co_return FromNetError(ec, ClientError::Kind::kProtocol, cancel_,
                                       "reading the upstream response");
            }
            const size_t got = sizeof(buf_) - parser_->get().body().size;
            if (got > 0) co_return std::string(buf_, got);
        }
    }

  private:
    // Feeds the parser what is already buffered, without reading from the socket, and drops
    // the body it yields.
    void ParseBuffered() {
        for (int i = 0; i < 8 && !parser_->is_done() && conn_->buffer.size() > 0; ++i) {
            auto& body = parser_->get().body();
            body.data = buf_;
            body.size = sizeof(buf_);
            const size_t buffered = conn_->buffer.size();
            if (io::ParseBuffered(*parser_, conn_->buffer)) return;
            if (conn_->buffer.size() == buffered) return;  // no progress
        }
    }

    void Finish() {
        if (!conn_) return;
        cancel_.Clear();
        // Bytes past the end of the message (a stray line, more body than announced) would be
        // read as the start of the next request's answer: such a connection is not reused.
        if (parser_->is_done() && parser_->keep_alive() && conn_->buffer.size() == 0) {
            conn_->lowest().expires_never();
            PoolOf(conn_->lowest().get_executor()).Put(std::move(conn_));
        }
        conn_.reset();
    }

    std::unique_ptr<Conn> conn_;
    std::unique_ptr<Parser> parser_;
    std::chrono::steady_clock::time_point deadline_;
    base::Canceller& cancel_;
    char buf_[16 * 1024];
};

}  // namespace

std::string_view ClientErrorKindName(ClientError::Kind kind) {
    switch (kind) {
        case ClientError::Kind::kBadUrl:
            return "bad_url";
        case ClientError::Kind::kDns:
            return "dns";
        case ClientError::Kind::kConnect:
            return "connect";
        case ClientError::Kind::kTls:
            return "tls";
        case ClientError::Kind::kTimeout:
            return "timeout";
        case ClientError::Kind::kProtocol:
            return "protocol";
        case ClientError::Kind::kCancelled:
            return "cancelled";
    }
    return "unknown";
}

asio::awaitable<Result<std::string, ClientError>> ClientResponse::ReadAll(size_t limit) {
    std::string all;
    for (;;) {
        auto piece = co_await Read();
        if (!piece) co_return piece.error();
        if (piece->empty()) break;
        if (all.size() < limit) all.append(piece->substr(0, limit - all.size()));
    }
    co_return all;
}

asio::awaitable<Result<std::unique_ptr<ClientResponse>, ClientError>> Send(
    ClientRequest request, ClientTimeouts timeouts, base::Canceller& cancel) {
    auto cached = CachedOrigin(request.url);
    if (!cached) co_return cached.error();
    const std::shared_ptr<const Origin> origin = std::move(cached.value());
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + timeouts.total;

    std::string head;
    head.reserve(256);
    AppendRequestHead(head, request.method, origin->target, origin->host_header, request.headers,
                      request.body.size());

    // A request is never sent twice: once written, the upstream may be acting on it, so a
    // failure is reported (and the caller may fall back to another model). Stale pooled
    // connections are weeded out before use instead (StillIdle).
    std::unique_ptr<Conn> conn = PoolOf(co_await asio::this_coro::executor).Take(origin->key);
    if (!conn) {
        auto fresh = co_await Connect(*origin, timeouts, cancel);
        if (!fresh) {
            cancel.Clear();  // the action points into the connection that just failed
            co_return fresh.error();
        }
        conn = std::move(fresh.value());
    } else {
        auto& lowest = conn->lowest();
        cancel.OnCancel([&lowest] { lowest.close(); });
    }
    auto parser = std::make_unique<Parser>();
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    conn->lowest().expires_at(
        std::min(deadline, std::chrono::steady_clock::now() + timeouts.first_byte));
    boost::system::error_code ec;
    if (conn->tls) {
        ec = co_await WriteAndReadHead(*conn->tls, head, request.body, conn->buffer, *parser);
    } else {
        ec = co_await WriteAndReadHead(*conn->plain, head, request.body, conn->buffer, *parser);
    }
    if (ec) {
        cancel.Clear();
        co_return FromNetError(ec, ClientError::Kind::kProtocol, cancel,
                               "waiting for the upstream response");
    }
    co_return std::unique_ptr<ClientResponse>(
        new ResponseImpl(std::move(conn), std::move(parser), deadline, cancel));
}

}  // namespace beacon::http
