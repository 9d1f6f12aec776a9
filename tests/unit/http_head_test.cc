// The HTTP heads Beacon writes itself (http/head.h), read back with Beast's own parser so that a
// head a real HTTP/1.1 implementation would misread fails here.
#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <string>

#include "http/head.h"

namespace beacon::http {
namespace {
namespace bhttp = boost::beast::http;

// Parses `text` (a head and a body) as a response; fails the test if Beast refuses it.
template <bool isRequest>
bhttp::message<isRequest, bhttp::string_body> ParseMessage(const std::string& text) {
    bhttp::parser<isRequest, bhttp::string_body> parser;
    parser.eager(true);
    if constexpr (!isRequest) parser.skip(false);
    boost::system::error_code ec;
    const size_t used = parser.put(boost::asio::buffer(text), ec);
    EXPECT_FALSE(ec) << ec.message() << "\n" << text;
    EXPECT_EQ(used, text.size()) << text;
    if (!parser.is_done()) parser.put_eof(ec);
    EXPECT_TRUE(parser.is_done()) << text;
    return parser.release();
}

TEST(HttpHead, WholeResponseParsesWithItsBody) {
    const Headers extra{{"X-Generation-Id", "gen-1"}};
    std::string text;
    AppendResponseHead(text, {.status = 200,
                              .version = 11,
                              .keep_alive = true,
                              .content_type = "application/json",
                              .cache_control = {},
                              .extra = &extra,
                              .content_length = 11});
    text += R"({"ok":true})";
    auto res = ParseMessage<false>(text);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.reason(), "OK");
    EXPECT_EQ(res.version(), 11u);
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(res[bhttp::field::content_type], "application/json");
    EXPECT_EQ(res[bhttp::field::server], "beacon");
    EXPECT_EQ(res["X-Generation-Id"], "gen-1");
    EXPECT_EQ(res.body(), R"({"ok":true})");
}

TEST(HttpHead, ConnectionFollowsTheVersion) {
    for (unsigned version : {10u, 11u}) {
        for (bool keep_alive : {false, true}) {
            std::string text;
            AppendResponseHead(text, {.status = 404,
                                      .version = version,
                                      .keep_alive = keep_alive,
                                      .content_type = "application/json",
                                      .cache_control = {},
                                      .extra = nullptr,
                                      .content_length = 2});
            text += "{}";
            auto res = ParseMessage<false>(text);
            EXPECT_EQ(res.version(), version);
            EXPECT_EQ(res.keep_alive(), keep_alive) << text;
            EXPECT_EQ(res.reason(), "Not Found");
        }
    }
}

TEST(HttpHead, StreamHeadIsChunked) {
    std::string text;
    AppendResponseHead(text, {.status = 200,
                              .version = 11,
                              .keep_alive = true,
                              .content_type = "text/event-stream",
                              .cache_control = "no-cache",
                              .extra = nullptr,
                              .content_length = std::nullopt});
    text += "5\r\nhello\r\n0\r\n\r\n";
    auto res = ParseMessage<false>(text);
    EXPECT_TRUE(res.chunked());
    EXPECT_EQ(res[bhttp::field::cache_control], "no-cache");
    EXPECT_EQ(res.body(), "hello");
}

TEST(HttpHead, NoBodyStatusesHaveNoLength) {
    std::string text;
    AppendResponseHead(text, {.status = 204,
                              .version = 11,
                              .keep_alive = true,
                              .content_type = {},
                              .cache_control = {},
                              .extra = nullptr,
                              .content_length = 0});
    EXPECT_EQ(text.find("Content-Length"), std::string::npos) << text;
    EXPECT_EQ(text.find("Transfer-Encoding"), std::string::npos) << text;
    EXPECT_TRUE(text.ends_with("\r\n\r\n"));
}

TEST(HttpHead, HeadersThatWouldSplitTheHeadAreLeftOut) {
    const Headers extra{{"X-Good", "yes"},
                        {"X-Bad", "a\r\nSet-Cookie: evil=1"},
                        {"X-Bad\nName", "v"},
                        {"", "empty name"}};
    std::string text;
    AppendResponseHead(text, {.status = 200,
                              .version = 11,
                              .keep_alive = true,
                              .content_type = "text/plain",
                              .cache_control = {},
                              .extra = &extra,
                              .content_length = 0});
    auto res = ParseMessage<false>(text);
    EXPECT_EQ(res["X-Good"], "yes");
    EXPECT_EQ(res.find("X-Bad"), res.end());
    EXPECT_EQ(res.find("Set-Cookie"), res.end());
}

TEST(HttpHead, ALaterHeaderReplacesAnEarlierOne) {
    // Like Beast's fields::set, which the writes used before: the last of a name wins, and the
    // framing headers stay ours.
    const Headers extra{{"Content-Type", "text/html"},
                        {"x-a", "1"},
                        {"X-A", "2"},
                        {"Content-Length", "999"},
                        {"Connection", "close"}};
    std::string text;
    AppendResponseHead(text, {.status = 200,
                              .version = 11,
                              .keep_alive = true,
                              .content_type = "application/json",
                              .cache_control = {},
                              .extra = &extra,
                              .content_length = 2});
    text += "{}";
    auto res = ParseMessage<false>(text);
    EXPECT_EQ(res.count(bhttp::field::content_type), 1u);
    EXPECT_EQ(res[bhttp::field::content_type], "text/html");
    EXPECT_EQ(res.count("X-A"), 1u);
    EXPECT_EQ(res["X-A"], "2");
    EXPECT_EQ(res.body(), "{}");
    EXPECT_TRUE(res.keep_alive());
}

TEST(HttpHead, RequestHead) {
    const Headers headers{{"Content-Type", "application/json"},
                          {"Authorization", "Bearer k"},
                          {"Host", "evil.example"},
                          {"Transfer-Encoding", "chunked"}};
    const std::string body = R"({"model":"m"})";
    std::string text;
    AppendRequestHead(text, "POST", "/v1/chat/completions?x=1", "127.0.0.1:8080", headers,
                      body.size());
    text += body;
    auto req = ParseMessage<true>(text);
    EXPECT_EQ(req.method(), bhttp::verb::post);
    EXPECT_EQ(req.target(), "/v1/chat/completions?x=1");
    EXPECT_EQ(req.version(), 11u);
    EXPECT_TRUE(req.keep_alive());
    EXPECT_EQ(req.count(bhttp::field::host), 1u);
    EXPECT_EQ(req[bhttp::field::host], "127.0.0.1:8080");
    EXPECT_EQ(req[bhttp::field::user_agent], "beacon/0.1");
    EXPECT_EQ(req[bhttp::field::authorization], "Bearer k");
    EXPECT_FALSE(req.chunked());
    EXPECT_EQ(req.body(), body);
}

TEST(HttpHead, RequestHeadKeepsACallersUserAgentAndSendsNoLengthForAnEmptyGet) {
    std::string text;
    AppendRequestHead(text, "GET", "/api/public/health", "h", {{"User-Agent", "probe/2"}}, 0);
    auto req = ParseMessage<true>(text);
    EXPECT_EQ(req.method(), bhttp::verb::get);
    EXPECT_EQ(req.count(bhttp::field::user_agent), 1u);
    EXPECT_EQ(req[bhttp::field::user_agent], "probe/2");
    EXPECT_EQ(text.find("Content-Length"), std::string::npos) << text;
}

TEST(HttpHead, ABadMethodBecomesPost) {
    std::string text;
    AppendRequestHead(text, "PO ST\r\n", "/", "h", {}, 0);
    EXPECT_TRUE(text.starts_with("POST / HTTP/1.1\r\n")) << text;
}

}  // namespace
}  // namespace beacon::http
