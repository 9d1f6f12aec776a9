#include "api/sse.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace beacon::api {
namespace {

struct Parsed {
    std::vector<SseEvent> events;
    bool ok = true;
};

// Feeds `chunks` in order to a fresh parser and collects its events.
Parsed FeedChunks(const std::vector<std::string_view>& chunks,
                  size_t max_event_bytes = 8 * 1024 * 1024) {
    SseParser parser(max_event_bytes);
    Parsed out;
    for (auto chunk : chunks) {
        out.ok = parser.Feed(chunk, [&](SseEvent&& e) { out.events.push_back(std::move(e)); });
        if (!out.ok) break;
    }
    return out;
}

Parsed FeedWhole(std::string_view bytes) { return FeedChunks({bytes}); }

std::vector<std::pair<std::string, std::string>> Flatten(const std::vector<SseEvent>& events) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& e : events) out.emplace_back(e.event, e.data);
    return out;
}

using Events = std::vector<std::pair<std::string, std::string>>;

// A stream with every feature the parser handles: a BOM, CRLF, CR and LF line ends, comments
// (OpenRouter's keep-alive), multi-line data, an `event:` field, ignored id/retry fields, an
// event without data, a field without a colon and the [DONE] sentinel.
constexpr std::string_view kSampleStream =
    "\xEF\xBB\xBF"
    ": OPENROUTER PROCESSING\r\n\r\n"
    "data: {\"id\":\"gen-1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
    "id: 7\rretry: 1000\rdata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\r"
    "event: error\ndata: {\"error\":\n"
    "data:  {\"message\":\"boom\"}}\n\n"
    "event: ping\n\n"
    "data\n\n"
    ":comment without space\n"
    "data: [DONE]\n\n";

const Events kSampleEvents = {
    {"", "{\"id\":\"gen-1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}"},
    {"", "{\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}"},
    {"error", "{\"error\":\n {\"message\":\"boom\"}}"},
    {"", ""},
    {"", "[DONE]"},
};

TEST(SseParserTest, SampleStreamWhole) {
    // Verifies the events of the sample stream fed in one piece.
    auto p = FeedWhole(kSampleStream);
    EXPECT_TRUE(p.ok);
    EXPECT_EQ(Flatten(p.events), kSampleEvents);
}

TEST(SseParserTest, SampleStreamSplitAtEveryBoundary) {
    // Verifies that splitting the sample stream in two at every byte boundary (including inside
    // the BOM and between CR and LF) gives the same events as feeding it whole.
    for (size_t i = 0; i <= kSampleStream.size(); ++i) {
        auto p = FeedChunks({kSampleStream.substr(0, i), kSampleStream.substr(i)});
        EXPECT_TRUE(p.ok) << "split at " << i;
        EXPECT_EQ(Flatten(p.events), kSampleEvents) << "split at " << i;
    }
}

TEST(SseParserTest, SampleStreamSplitAtEveryPairOfBoundaries) {
    // Verifies that three-piece splits at every pair of boundaries give the same events.
    const size_t n = kSampleStream.size();
    for (size_t i = 0; i <= n; ++i) {
        for (size_t j = i; j <= n; ++j) {
            auto p = FeedChunks({kSampleStream.substr(0, i), kSampleStream.substr(i, j - i),
                                 kSampleStream.substr(j)});
            ASSERT_EQ(Flatten(p.events), kSampleEvents) << "split at " << i << "," << j;
        }
    }
}

TEST(SseParserTest, SampleStreamOneByteAtATime) {
    // Verifies byte-by-byte feeding, the worst case of a slow upstream.
    SseParser parser;
    std::vector<SseEvent> events;
    for (char c : kSampleStream) {
        ASSERT_TRUE(parser.Feed(std::string_view(&c, 1),
                                [&](SseEvent&& e) { events.push_back(std::move(e)); }));
    }
    EXPECT_EQ(Flatten(events), kSampleEvents);
}

TEST(SseParserTest, LineEndings) {
    // Verifies that LF, CRLF and CR each end lines, and that CR LF is one line end, not two.
    EXPECT_EQ(Flatten(FeedWhole("data: a\n\n").events), (Events{{"", "a"}}));
    EXPECT_EQ(Flatten(FeedWhole("data: a\r\n\r\n").events), (Events{{"", "a"}}));
    EXPECT_EQ(Flatten(FeedWhole("data: a\r\r").events), (Events{{"", "a"}}));
    // CRLF between two data lines must not dispatch the first line as its own event.
    EXPECT_EQ(Flatten(FeedWhole("data: a\r\ndata: b\r\n\r\n").events), (Events{{"", "a\nb"}}));
    // LF CR is two line ends: an empty line dispatches.
    EXPECT_EQ(Flatten(FeedWhole("data: a\n\rdata: b\n\n").events), (Events{{"", "a"}, {"", "b"}}));
}

TEST(SseParserTest, IncompleteEventIsNotDispatched) {
    // Verifies that an event without its terminating blank line is held back.
    EXPECT_TRUE(FeedWhole("data: a\n").events.empty());
    EXPECT_TRUE(FeedWhole("data: a").events.empty());
}

TEST(SseParserTest, Comments) {
    // Verifies that comment lines are ignored, including OpenRouter's keep-alive, and do not
    // break up a multi-line event.
    EXPECT_TRUE(FeedWhole(kSseKeepAlive).events.empty());
    EXPECT_EQ(Flatten(FeedWhole("data: a\n: keep-alive\ndata: b\n\n").events),
              (Events{{"", "a\nb"}}));
}

TEST(SseParserTest, FieldValueSpaces) {
    // Verifies that exactly one space after the colon is removed, and a missing colon means an
    // empty value.
    EXPECT_EQ(Flatten(FeedWhole("data:x\n\n").events), (Events{{"", "x"}}));
    EXPECT_EQ(Flatten(FeedWhole("data:  x \n\n").events), (Events{{"", " x "}}));
    EXPECT_EQ(Flatten(FeedWhole("data\n\n").events), (Events{{"", ""}}));
    EXPECT_EQ(Flatten(FeedWhole("data: a:b\n\n").events), (Events{{"", "a:b"}}));
}

TEST(SseParserTest, EventField) {
    // Verifies the `event:` field, that it applies only to its own event, and that an event with
    // no data is not dispatched.
    EXPECT_EQ(Flatten(FeedWhole("event: error\ndata: x\n\ndata: y\n\n").events),
              (Events{{"error", "x"}, {"", "y"}}));
    EXPECT_TRUE(FeedWhole("event: ping\n\n").events.empty());
    EXPECT_EQ(Flatten(FeedWhole("event: ping\n\ndata: z\n\n").events), (Events{{"", "z"}}));
}

TEST(SseParserTest, UnknownFieldsIgnored) {
    // Verifies that id, retry and unknown fields do not change data.
    EXPECT_EQ(Flatten(FeedWhole("id: 1\nretry: 5\nfoo: bar\ndata: d\n\n").events),
              (Events{{"", "d"}}));
    EXPECT_EQ(Flatten(FeedWhole("Data: d\n\n").events), Events{});
}

TEST(SseParserTest, Bom) {
    // Verifies that a leading BOM is skipped, also when split, but a BOM later is kept as data.
    EXPECT_EQ(Flatten(FeedWhole("\xEF\xBB\xBF"
                                "data: a\n\n")
                          .events),
              (Events{{"", "a"}}));
    EXPECT_EQ(Flatten(FeedChunks({"\xEF", "\xBB", "\xBF", "data: a\n\n"}).events),
              (Events{{"", "a"}}));
    EXPECT_EQ(Flatten(FeedWhole("data: \xEF\xBB\xBF\n\n").events), (Events{{"", "\xEF\xBB\xBF"}}));
    // A second BOM is part of the first field name, which is then unknown.
    EXPECT_TRUE(FeedWhole("\xEF\xBB\xBF\xEF\xBB\xBF"
                          "data: a\n\n")
                    .events.empty());
    // A partial BOM is not a BOM: its bytes belong to the line.
    EXPECT_TRUE(FeedChunks({"\xEF\xBB", "data: a\n\n"}).events.empty());
    EXPECT_EQ(Flatten(FeedWhole("\xEF"
                                ": c\ndata: a\n\n")
                          .events),
              (Events{{"", "a"}}));
}

TEST(SseParserTest, EmptyFeedsAreHarmless) {
    // Verifies that empty chunks (also before the first byte) change nothing.
    EXPECT_EQ(Flatten(FeedChunks({"", "\xEF\xBB\xBF", "", "data: a\n", "", "\n"}).events),
              (Events{{"", "a"}}));
}

TEST(SseParserTest, SizeLimitFailsTheStream) {
    // Verifies that a line or an accumulated event beyond the bound fails the parser for good.
    {
        SseParser parser(16);
        std::vector<SseEvent> events;
        auto sink = [&](SseEvent&& e) { events.push_back(std::move(e)); };
        EXPECT_TRUE(parser.Feed("data: 0123456789\n\n", sink));  // 16 bytes: at the bound
        EXPECT_EQ(events.size(), 1u);
        EXPECT_FALSE(parser.Feed("data: 0123456789A\n\n", sink));
        EXPECT_TRUE(parser.failed());
        EXPECT_FALSE(parser.Feed("data: a\n\n", sink));  // stays failed
        EXPECT_EQ(events.size(), 1u);
    }
    {
        // Multi-line data counts as a whole: three short lines over the bound.
        auto p = FeedWhole("data: 12345\ndata: 12345\ndata: 12345\n\n");
        EXPECT_TRUE(p.ok);
        auto limited = FeedChunks({"data: 12345\ndata: 12345\ndata: 12345\n\n"}, 16);
        EXPECT_FALSE(limited.ok);
        EXPECT_TRUE(limited.events.empty());
    }
}

TEST(SseDataTest, Framing) {
    // Verifies the data framing we write and that our parser reads it back.
    EXPECT_EQ(SseData("{\"a\":1}"), "data: {\"a\":1}\n\n");
    EXPECT_EQ(SseData(""), "data: \n\n");
    EXPECT_EQ(
        Flatten(FeedWhole(SseData("{\"a\":1}") + std::string(kSseKeepAlive) + std::string(kSseDone))
                    .events),
        (Events{{"", "{\"a\":1}"}, {"", "[DONE]"}}));
    EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
    EXPECT_EQ(kSseKeepAlive, ": OPENROUTER PROCESSING\n\n");
}

}  // namespace
}  // namespace beacon::api
