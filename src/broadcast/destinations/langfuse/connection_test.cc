#include "broadcast/destinations/langfuse/connection_test.h"

#include <boost/json.hpp>
#include <cstdio>

#include "base/cancel.h"
#include "base/crypto.h"
#include "http/client.h"

namespace beacon::broadcast::langfuse {
namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::string Trimmed(std::string url) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
}

struct Answer {
    int status = 0;
    std::string body;
    std::string content_type;
};

asio::awaitable<Result<Answer, http::ClientError>> Get(const std::string& url,
                                                       const std::string& authorization,
                                                       milliseconds budget) {
    http::ClientRequest req;
    req.method = "GET";
    req.url = url;
    if (!authorization.empty()) req.headers.emplace_back("Authorization", authorization);
    req.headers.emplace_back("Accept", "application/json");
    http::ClientTimeouts t;
    t.connect = budget;
    t.first_byte = budget;
    t.total = budget;
    base::Canceller cancel;
    auto sent = co_await http::Send(std::move(req), t, cancel);
    if (!sent) co_return sent.error();
    auto& response = *sent.value();
    Answer a;
    a.status = response.status();
    a.content_type = std::string(response.header("content-type"));
    auto body = co_await response.ReadAll(256 * 1024);
    if (!body) co_return body.error();
    a.body = std::move(body.value());
    co_return a;
}

milliseconds Left(Clock::time_point deadline) {
    return std::max(milliseconds(1),
                    std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

ConnectionTest Failure(std::string code, std::string message) {
    ConnectionTest t;
    t.code = std::move(code);
    t.message = std::move(message);
    return t;
}

ConnectionTest FromClientError(const http::ClientError& e, const std::string& base,
                               milliseconds budget) {
    using K = http::ClientError::Kind;
    switch (e.kind) {
        case K::kBadUrl:
            return Failure("invalid_url", "The base URL is not a valid http(s) URL: " + base);
        case K::kDns:
            return Failure("dns", "Cannot resolve the host of " + base + " (" + e.message +
                                      "). Check the base URL.");
        case K::kConnect:
            return Failure("connect", "Could not connect to " + base + " (" + e.message +
                                          "). Check the base URL and that the server is up.");
        case K::kTls:
            return Failure("tls", "The TLS handshake with " + base + " failed (" + e.message +
                                      "). Check the certificate, or the scheme (http/https).");
        case K::kTimeout:
            return Failure("timeout", "No answer from " + base + " within " +
                                          std::to_string(budget.count() / 1000) + " s.");
        case K::kProtocol:
        case K::kCancelled:
            return Failure("connect",
                           base + " closed the connection without answering (" + e.message + ").");
    }
    return Failure("connect", e.message);
}

bool LooksJson(const Answer& a, json::value* out) {
    boost::system::error_code ec;
    *out = json::parse(a.body, ec);
    return !ec;
}

}  // namespace

bool HasOtlpEndpoint(const std::string& version) {
    std::string v = version;
    if (!v.empty() && (v[0] == 'v' || v[0] == 'V')) v.erase(0, 1);
    int major = 0, minor = 0, patch = 0;
    if (std::sscanf(v.c_str(), "%d.%d.%d", &major, &minor, &patch) < 2) return true;  // unknown
    return major > 3 || (major == 3 && minor >= 22);
}

asio::awaitable<ConnectionTest> TestConnection(
    std::string base_url, std::string public_key, std::string secret_key,
    std::vector<std::pair<std::string, std::string>> regions, milliseconds budget) {
    const auto deadline = Clock::now() + budget;
    const std::string base = Trimmed(base_url);
    const std::string auth = "Basic " + base::Base64Encode(public_key + ":" + secret_key);

    auto projects = co_await Get(base + "/api/public/projects", auth, Left(deadline));
    if (!projects) co_return FromClientError(projects.error(), base, budget);
    const Answer& a = projects.value();
    json::value v;
    const bool is_json = LooksJson(a, &v);

    if (a.status == 401) {
        ConnectionTest t = Failure("invalid_keys", "");
        // Keys are per region: if the chosen URL is a cloud region, ask the others.
        bool chosen_is_cloud = false;
        for (const auto& [name, url] : regions) chosen_is_cloud |= Trimmed(url) == base;
        if (chosen_is_cloud) {
            for (const auto& [name, url] : regions) {
                if (Trimmed(url) == base) continue;
                auto other = co_await Get(Trimmed(url) + "/api/public/projects", auth,
                                          std::min(Left(deadline), milliseconds(2000)));
                if (other && other->status == 200) {
                    t.suggested_base_url = Trimmed(url);
                    t.message = "Langfuse rejected these keys (401) at " + base +
                                ". Keys belong to one region, and these work in the " + name +
                                " region: use the base URL " + t.suggested_base_url + ".";
                    co_return t;
                }
                if (Clock::now() >= deadline) break;
            }
        }
        t.message = "Langfuse rejected these keys (401) at " + base +
                    ". Check the public and secret key, and that the base URL is the region (or "
                    "server) of their project: keys belong to one region.";
        co_return t;
    }
    if (a.status == 403) {
        co_return Failure("organization_key",
                          "Langfuse refused these keys (403): they look like an organisation key. "
                          "Create a project API key in the project's settings.");
    }
    if (a.status == 404 || !is_json) {
        co_return Failure("not_langfuse",
                          base +
                              " does not look like a Langfuse base URL (GET /api/public/projects "
                              "answered HTTP " +
                              std::to_string(a.status) + (is_json ? "" : " without JSON") + ").");
    }
    if (a.status != 200) {
        co_return Failure("http_error", "Langfuse answered HTTP " + std::to_string(a.status) +
                                            " to GET /api/public/projects.");
    }
    const json::array* data = nullptr;
    if (v.is_object()) {
        if (auto d = v.as_object().if_contains("data"); d && d->is_array()) data = &d->as_array();
    }
    if (!data) {
        co_return Failure("not_langfuse",
                          base + " answered, but not like Langfuse (no project list).");
    }
    if (data->empty() || !data->front().is_object()) {
        co_return Failure("no_project", "The keys were accepted but open no project.");
    }
    ConnectionTest t;
    t.ok = true;
    const auto& project = data->front().as_object();
    if (auto id = project.if_contains("id"); id && id->is_string()) t.project_id = id->as_string();
    if (auto n = project.if_contains("name"); n && n->is_string()) t.project_name = n->as_string();

    auto health = co_await Get(base + "/api/public/health", "", Left(deadline));
    if (health) {
        json::value hv;
        if (LooksJson(*health, &hv) && hv.is_object()) {
            if (auto ver = hv.as_object().if_contains("version"); ver && ver->is_string()) {
                t.server_version = ver->as_string();
            }
        }
    }
    t.transport =
        t.server_version.empty() || HasOtlpEndpoint(t.server_version) ? "otlp" : "ingestion";
    t.message =
        "Connected to Langfuse project \"" + t.project_name + "\"" +
        (t.server_version.empty() ? std::string() : " (server " + t.server_version + ")") +
        "; traces will use " +
        (t.transport == "otlp" ? "OTLP" : "the legacy ingestion API (server older than 3.22)") +
        ".";
    co_return t;
}

}  // namespace beacon::broadcast::langfuse
