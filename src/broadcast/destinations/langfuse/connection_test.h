// Test Connection for a Langfuse destination: are the keys accepted, which project do they
// open, which server version answers (and so which transport to use)? Each failure gets its
// own code and a message that says what to fix.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace beacon::broadcast::langfuse {

struct ConnectionTest {
    bool ok = false;
    std::string code;  // empty when ok; invalid_keys, organization_key, not_langfuse, no_project,
                       // dns, connect, tls, timeout, http_error, invalid_url
    std::string message;
    std::string project_id;
    std::string project_name;
    std::string server_version;      // empty when /api/public/health did not say
    std::string transport;           // "otlp" or "ingestion"
    std::string suggested_base_url;  // a cloud region that accepts the keys (invalid_keys)
};

// True for "3.22.0" and later (Langfuse's OTLP endpoint); false for older, parseable versions.
bool HasOtlpEndpoint(const std::string& version);

// `regions` (name, base URL) are the Langfuse cloud regions; when `base_url` is one of them and
// the keys are refused, the others are tried so the message can name the right one.
// Runs on the calling coroutine's executor; everything fits in `budget`.
boost::asio::awaitable<ConnectionTest> TestConnection(
    std::string base_url, std::string public_key, std::string secret_key,
    std::vector<std::pair<std::string, std::string>> regions, std::chrono::milliseconds budget);

}  // namespace beacon::broadcast::langfuse
