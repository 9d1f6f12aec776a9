// Socket writes and buffered parses that finish without a turn of the event loop when they can.
// Shared by the server and the client; not part of the module's interface.
//
// Asio completes an operation that finished at once (a write the socket took whole, a Beast
// read whose bytes were already buffered) through a posted handler: the coroutine suspends, the
// scheduler runs the reactor (an `epoll_wait` with a zero timeout) and then resumes it. A
// proxied request made about four such turns, each a system call (about 1 us in this VM) and a
// suspension of the request's coroutine for nothing. With these (and LetOthersRun), Beacon's
// request thread made 12.3 system calls per proxied request at one connection instead of 15.5,
// and 4.7 instead of 5.1 at 32 (docs/benchmarks.md, session 7).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>

namespace beacon::http::io {

// Sends what the socket takes now, without waiting, and returns how much that was (0 when it
// would block). `ec` is set when the socket failed.
template <class ConstBufferSequence>
size_t SendNow(boost::asio::ip::tcp::socket& socket, const ConstBufferSequence& buffers,
               boost::system::error_code& ec) {
    std::array<iovec, 16> iov;
    size_t count = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && count < iov.size(); ++it) {
        const boost::asio::const_buffer b(*it);
        if (b.size() == 0) continue;
        iov[count++] = {const_cast<void*>(b.data()), b.size()};
    }
    if (count == 0) return 0;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    const ssize_t sent = ::sendmsg(socket.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent >= 0) return static_cast<size_t>(sent);
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        ec.assign(errno, boost::system::system_category());
    }
    return 0;
}

// Writes all of `buffers`: at once when the socket takes them (the common case: a response is
// far smaller than the socket's send buffer), else the rest asynchronously under the stream's
// timeout, which the caller sets.
template <class ConstBufferSequence>
boost::asio::awaitable<boost::system::error_code> WriteAll(boost::beast::tcp_stream& stream,
                                                           const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    const size_t sent = SendNow(stream.socket(), buffers, ec);
    if (ec) co_return ec;
    boost::beast::buffers_suffix<ConstBufferSequence> rest(buffers);
    rest.consume(sent);
    if (boost::beast::buffer_bytes(rest) == 0) co_return ec;
    auto [wec, n] = co_await boost::asio::async_write(
        stream, rest, boost::asio::as_tuple(boost::asio::use_awaitable));
    co_return wec;
}

// Lets the thread's other ready handlers run before reading the reply to what was just written
// at once. Under load the reply has usually arrived by then and the read finds it; read at once,
// it would find nothing (Asio tries a read before waiting for readiness) and cost a system call.
// A write completed by Asio took this turn anyway, so a reply never costs more than it did.
inline boost::asio::awaitable<void> LetOthersRun() {
    co_await boost::asio::post(co_await boost::asio::this_coro::executor,
                               boost::asio::use_awaitable);
}

// Feeds `parser` the bytes already in `buffer` (the body, or its start, usually arrives with
// the head) without reading the socket. Returns the parser's error, if any; `need_more` and
// `need_buffer` are not errors here: the caller reads on, or gives the body more room.
template <class Parser>
boost::system::error_code ParseBuffered(Parser& parser, boost::beast::flat_buffer& buffer) {
    namespace bhttp = boost::beast::http;
    // A bounded number of steps: a chunked body takes one per chunk header and one per chunk.
    for (int step = 0; step < 64 && !parser.is_done() && buffer.size() > 0; ++step) {
        boost::system::error_code ec;
        const size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec == bhttp::error::need_more || ec == bhttp::error::need_buffer) return {};
        if (ec) return ec;
        if (used == 0) break;
    }
    return {};
}

}  // namespace beacon::http::io
