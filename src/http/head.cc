#include "http/head.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/status.hpp>
#include <charconv>
#include <initializer_list>

namespace beacon::http {
namespace {

bool SafeText(std::string_view s) {
    for (char c : s) {
        if (c == '\r' || c == '\n' || c == '\0') return false;
    }
    return true;
}

void AppendUnsigned(std::string& out, size_t n) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), n);
    out.append(buf, end);
}

void AppendField(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
}

bool Has(const Headers& headers, std::string_view name) {
    for (const auto& h : headers) {
        if (boost::beast::iequals(h.first, name)) return true;
    }
    return false;
}

// Like Beast's fields::set: a later header of the same name replaces an earlier one. Framing
// headers are ours (`reserved`), never the caller's.
void AppendExtra(std::string& out, const Headers& headers,
                 std::initializer_list<std::string_view> reserved) {
    for (size_t i = 0; i < headers.size(); ++i) {
        const auto& [name, value] = headers[i];
        if (name.empty() || !SafeText(name) || !SafeText(value)) continue;
        bool skip = false;
        for (auto r : reserved) skip = skip || boost::beast::iequals(name, r);
        for (size_t j = i + 1; j < headers.size() && !skip; ++j) {
            skip = boost::beast::iequals(name, headers[j].first);
        }
        if (!skip) AppendField(out, name, value);
    }
}

bool IsToken(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::string_view ReasonPhrase(int status) {
    auto reason = boost::beast::http::obsolete_reason(
        static_cast<boost::beast::http::status>(static_cast<unsigned>(status)));
    return {reason.data(), reason.size()};
}

void AppendResponseHead(std::string& out, const ResponseHead& head) {
    out.append(head.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    AppendUnsigned(out, static_cast<size_t>(head.status));
    out.push_back(' ');
    out.append(ReasonPhrase(head.status));
    out.append("\r\nServer: beacon\r\n");
    static const Headers kNone;
    const Headers& extra = head.extra ? *head.extra : kNone;
    if (!head.content_type.empty() && SafeText(head.content_type) && !Has(extra, "Content-Type")) {
        AppendField(out, "Content-Type", head.content_type);
    }
    if (!head.cache_control.empty() && !Has(extra, "Cache-Control")) {
        AppendField(out, "Cache-Control", head.cache_control);
    }
    AppendExtra(out, extra, {"Server", "Connection", "Content-Length", "Transfer-Encoding"});
    // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes unless told.
    if (head.version == 10) {
        if (head.keep_alive) out.append("Connection: keep-alive\r\n");
    } else if (!head.keep_alive) {
        out.append("Connection: close\r\n");
    }
    if (StatusHasBody(head.status)) {
        if (head.content_length) {
            out.append("Content-Length: ");
            AppendUnsigned(out, *head.content_length);
            out.append("\r\n");
        } else {
            out.append("Transfer-Encoding: chunked\r\n");
        }
    }
    out.append("\r\n");
}

void AppendRequestHead(std::string& out, std::string_view method, std::string_view target,
                       std::string_view host, const Headers& headers, size_t content_length) {
    if (!IsToken(method)) method = "POST";
    out.append(method);
    out.push_back(' ');
    out.append(target.empty() ? std::string_view("/") : target);
    out.append(" HTTP/1.1\r\n");
    AppendField(out, "Host", host);
    if (!Has(headers, "User-Agent")) out.append("User-Agent: beacon/0.1\r\n");
    AppendExtra(out, headers, {"Host", "Connection", "Content-Length", "Transfer-Encoding"});
    if (content_length > 0 || (method != "GET" && method != "HEAD")) {
        out.append("Content-Length: ");
        AppendUnsigned(out, content_length);
        out.append("\r\n");
    }
    out.append("\r\n");
}

}  // namespace beacon::http
