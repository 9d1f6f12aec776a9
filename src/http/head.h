// HTTP/1.1 message heads written as text, for the two writes every proxied request makes (the
// upstream request, the client's response). Beast's serializer walks a buffers_cat_view of its
// field list one buffer at a time; callgrind counted ~18k instructions per write for it, about
// a sixth of the request thread. A head built here is one string, written with the body as a
// two-buffer gather.
//
// Names and values come from our own code and configuration; a header whose name or value holds
// CR, LF or NUL is left out (it would split the head).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "http/exchange.h"

namespace beacon::http {

struct ResponseHead {
    int status = 200;
    unsigned version = 11;  // the request's: 10 or 11
    bool keep_alive = true;
    std::string_view content_type;
    std::string_view cache_control;  // empty: none
    const Headers* extra = nullptr;
    // nullopt: chunked (a stream). Left out for 1xx, 204 and 304, which have no body.
    std::optional<size_t> content_length;
};

// Appends the status line, the headers and the blank line.
void AppendResponseHead(std::string& out, const ResponseHead& head);

// Appends an HTTP/1.1 request head with Host, User-Agent, the headers and Content-Length
// (keep-alive is the HTTP/1.1 default, so no Connection header).
void AppendRequestHead(std::string& out, std::string_view method, std::string_view target,
                       std::string_view host, const Headers& headers, size_t content_length);

// The status line's reason phrase ("OK", "Not Found"...); "Unknown" for codes without one.
std::string_view ReasonPhrase(int status);

// Whether a response with this status carries a body (no for 1xx, 204 and 304).
constexpr bool StatusHasBody(int status) { return status >= 200 && status != 204 && status != 304; }

}  // namespace beacon::http
