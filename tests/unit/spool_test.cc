// The spool on a real SQLite file: sequence numbers, cursors, deletion of finished rows, the size
// bound, damaged files set aside; and the record codec it stores.
#include "broadcast/spool.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/iso_time.h"
#include "trace/record_codec.h"

namespace beacon::broadcast {
namespace {

namespace fs = std::filesystem;

class TempDir {
  public:
    TempDir() {
        std::random_device rd;
        path_ = fs::temp_directory_path() / ("beacon-spool-test-" + std::to_string(rd()));
        fs::create_directories(path_);
    }
    ~TempDir() { fs::remove_all(path_); }
    std::string File(const std::string& name) const { return (path_ / name).string(); }
    std::vector<std::string> Names() const {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename());
        return out;
    }

  private:
    fs::path path_;
};

Spool::NewRecord Row(const std::string& body, std::vector<std::string> dests = {"a"}) {
    return {1000, JoinDestinations(dests), body};
}

std::unique_ptr<Spool> OpenOrDie(const std::string& path, int64_t max_bytes = 1 << 30) {
    auto s = Spool::Open({path, max_bytes, SpoolSync::kNormal});
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s ? std::move(s.value()) : nullptr;
}

// Verifies the destination list cannot match part of another id.
TEST(Spool, DestinationListMatchesWholeIds) {
    const std::string d = JoinDestinations({"dst_1", "cfg-main"});
    EXPECT_TRUE(ListsDestination(d, "dst_1"));
    EXPECT_TRUE(ListsDestination(d, "cfg-main"));
    EXPECT_FALSE(ListsDestination(d, "dst_"));
    EXPECT_FALSE(ListsDestination(d, "main"));
    EXPECT_FALSE(ListsDestination(JoinDestinations({}), "a"));
}

// Verifies rows get increasing sequence numbers, are read back in order within a range, and that
// rows every cursor passed are deleted while the others stay.
TEST(Spool, CommitReadAndDeleteDone) {
    TempDir dir;
    auto spool = OpenOrDie(dir.File("spool.db"));
    ASSERT_TRUE(spool);
    auto r = spool->Commit({Row("one"), Row("two"), Row("three")}, {{"a", 0}});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->first_seq, 1);
    EXPECT_EQ(r->last_seq, 3);
    auto rows = spool->Read(1, 3, 10, "a");
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 2u);
    EXPECT_EQ((*rows)[0].body, "two");
    EXPECT_EQ((*rows)[1].seq, 3);
    // "a" is done with 1 and 2; "b" (a second destination) with everything.
    ASSERT_TRUE(spool->Commit({}, {{"a", 2}, {"b", 3}}).ok());
    EXPECT_EQ(spool->Stats().records, 1);
    rows = spool->Read(0, 3, 10, "a");
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0].body, "three");
    auto backlog = spool->Backlog("a", 2);
    ASSERT_TRUE(backlog.ok());
    EXPECT_EQ(backlog->first, 1);
    EXPECT_EQ(backlog->second, SpoolRowBytes("three", JoinDestinations({"a"})));
}

// Verifies a reopened spool keeps its rows and cursors, and never reuses a sequence number, even
// after every row was deleted.
TEST(Spool, ReopenKeepsCursorsAndSequence) {
    TempDir dir;
    {
        auto spool = OpenOrDie(dir.File("spool.db"));
        ASSERT_TRUE(spool->Commit({Row("1"), Row("2")}, {{"a", 0}}).ok());
        ASSERT_TRUE(spool->Commit({}, {{"a", 2}}).ok());  // both done: deleted
        EXPECT_EQ(spool->Stats().records, 0);
    }
    auto spool = OpenOrDie(dir.File("spool.db"));
    EXPECT_EQ(spool->TakeStoredCursor("a"), 2);
    EXPECT_FALSE(spool->TakeStoredCursor("a").has_value());  // given out once
    EXPECT_EQ(spool->last_seq(), 2);
    auto r = spool->Commit({Row("3")}, {{"a", 2}});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->first_seq, 3);
}

// Verifies the size bound evicts the oldest rows, reports them oldest first, and keeps the
// newest.
TEST(Spool, SizeBoundEvictsOldest) {
    TempDir dir;
    const int64_t bound = 1 << 20;
    auto spool = OpenOrDie(dir.File("spool.db"), bound);
    const std::string body(100 * 1024, 'x');
    std::vector<Spool::NewRecord> rows;
    for (int i = 0; i < 15; ++i) rows.push_back(Row(body));
    auto r = spool->Commit(rows, {{"a", 0}});
    ASSERT_TRUE(r.ok());
    ASSERT_FALSE(r->evicted.empty());
    EXPECT_EQ(r->evicted.front().seq, 1);
    for (size_t i = 1; i < r->evicted.size(); ++i) {
        EXPECT_EQ(r->evicted[i].seq, r->evicted[i - 1].seq + 1);
    }
    auto st = spool->Stats();
    EXPECT_LE(st.bytes, bound);
    EXPECT_EQ(st.evicted, static_cast<int64_t>(r->evicted.size()));
    EXPECT_EQ(st.records + st.evicted, 15);
    auto left = spool->Read(0, 15, 100, "a");
    ASSERT_TRUE(left.ok());
    EXPECT_EQ(left->back().seq, 15);
}

// Verifies a file that is not a database is moved aside, counted, and replaced by a new spool.
TEST(Spool, GarbageFileIsSetAside) {
    TempDir dir;
    {
        std::ofstream f(dir.File("spool.db"), std::ios::binary);
        std::mt19937 rng(7);
        for (int i = 0; i < 8192; ++i) f.put(static_cast<char>(rng()));
    }
    auto spool = OpenOrDie(dir.File("spool.db"));
    ASSERT_TRUE(spool);
    EXPECT_EQ(spool->Stats().corrupt_set_aside, 1);
    bool aside = false;
    for (const auto& n : dir.Names()) aside |= n.rfind("spool.db.corrupt-", 0) == 0;
    EXPECT_TRUE(aside);
    auto r = spool->Commit({Row("fresh")}, {{"a", 0}});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(spool->Read(0, r->last_seq, 10, "a")->size(), 1u);
}

// Verifies damage in the middle of a valid database (not just its header) is found at open.
TEST(Spool, DamagedPagesAreSetAside) {
    TempDir dir;
    const std::string path = dir.File("spool.db");
    {
        auto spool = OpenOrDie(path);
        std::vector<Spool::NewRecord> rows;
        for (int i = 0; i < 200; ++i) rows.push_back(Row(std::string(2000, 'a' + i % 26)));
        ASSERT_TRUE(spool->Commit(rows, {{"a", 0}}).ok());
    }
    ASSERT_FALSE(fs::exists(path + "-wal") && fs::file_size(path + "-wal") > 0);
    const auto size = fs::file_size(path);
    ASSERT_GT(size, 100000u);
    {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size / 2));
        for (int i = 0; i < 8192; ++i) f.put('\xff');
    }
    auto spool = OpenOrDie(path);
    ASSERT_TRUE(spool);
    EXPECT_EQ(spool->Stats().corrupt_set_aside, 1);
    EXPECT_EQ(spool->Stats().records, 0);
}

// Verifies a destination reads only the rows that list it, and that a short read means the
// whole range was covered.
TEST(Spool, ReadsOnlyTheDestinationsRows) {
    TempDir dir;
    auto spool = OpenOrDie(dir.File("spool.db"));
    ASSERT_TRUE(
        spool
            ->Commit({Row("1", {"a"}), Row("2", {"b"}), Row("3", {"a", "b"}), Row("4", {"ab"})},
                     {{"a", 0}, {"b", 0}, {"ab", 0}})
            .ok());
    auto a = spool->Read(0, 4, 10, "a");
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(a->size(), 2u);
    EXPECT_EQ((*a)[0].body, "1");
    EXPECT_EQ((*a)[1].body, "3");
    auto b = spool->Read(0, 4, 1, "b");
    ASSERT_TRUE(b.ok());
    ASSERT_EQ(b->size(), 1u);
    EXPECT_EQ((*b)[0].seq, 2);
}

// Verifies the first sequence number at or after a time.
TEST(Spool, FirstSeqSince) {
    TempDir dir;
    auto spool = OpenOrDie(dir.File("spool.db"));
    ASSERT_TRUE(
        spool
            ->Commit({{100, JoinDestinations({"a"}), "x"}, {200, JoinDestinations({"a"}), "y"}},
                     {{"a", 0}})
            .ok());
    EXPECT_EQ(*spool->FirstSeqSince(150).value(), 2);
    EXPECT_EQ(*spool->FirstSeqSince(0).value(), 1);
    EXPECT_FALSE(spool->FirstSeqSince(300).value().has_value());
}

trace::TraceRecord FullRecord() {
    trace::TraceRecord r;
    r.generation_id = "gen-123";
    r.workspace_id = "ws";
    r.api_key_id = "key";
    r.api_key_name = "k";
    r.user = "u\"ser";
    r.session_id = "s";
    r.trace.present = true;
    r.trace.trace_id = "t";
    r.trace.trace_name = "tn";
    r.trace.span_name = "sn";
    r.trace.generation_name = "gn";
    r.trace.parent_span_id = "p";
    r.trace.extra = {{"environment", boost::json::value("prod")},
                     {"n", boost::json::value(3)},
                     {"nested", boost::json::parse(R"({"a":[1,2,{"b":null}]})")}};
    r.model = "openai/gpt-4o";
    r.provider = "OpenAI";
    r.model_parameters_json = R"({"temperature":0.5,"stream":true})";
    r.streamed = true;
    r.input_json = R"([{"role":"user","content":"hi\n\u0001"}])";
    r.output_text = "héllo";
    r.reasoning = "because";
    r.tool_calls = {{"call_1", "function", "f", R"({"x":1})"}};
    r.finish_reason = "stop";
    r.native_finish_reason = "end_turn";
    r.usage = {10, 5, 15, 2, 1, true};
    r.cost = {0.25, 0.5, 0.75};
    r.start_ns = 1764000000123456789;
    r.end_ns = 1764000001123456789;
    r.first_token_ns = 1764000000523456789;
    r.outcome = trace::Outcome::kFailed;
    r.status = 502;
    r.error_type = "provider_unavailable";
    r.error = "boom";
    r.attempts = {{"openai/gpt-4o", "OpenAI", 500, "upstream", 12.5}};
    return r;
}

// Verifies every field survives the trip through the spool format.
TEST(RecordCodec, RoundTripsEveryField) {
    const auto in = FullRecord();
    auto out = trace::DecodeRecord(trace::EncodeRecord(in));
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(out->generation_id, in.generation_id);
    EXPECT_EQ(out->user, in.user);
    EXPECT_EQ(out->trace.extra.size(), 3u);
    EXPECT_EQ(out->trace.extra[0].first, "environment");
    EXPECT_EQ(out->trace.extra[2].second, in.trace.extra[2].second);
    EXPECT_EQ(out->model_parameters_json, in.model_parameters_json);
    EXPECT_EQ(out->input_json, in.input_json);
    EXPECT_EQ(out->output_text, in.output_text);
    ASSERT_EQ(out->tool_calls.size(), 1u);
    EXPECT_EQ(out->tool_calls[0].arguments, in.tool_calls[0].arguments);
    EXPECT_EQ(out->usage.cached_tokens, 2);
    EXPECT_TRUE(out->usage.known);
    EXPECT_DOUBLE_EQ(out->cost.total, 0.75);
    EXPECT_EQ(out->start_ns, in.start_ns);
    EXPECT_EQ(out->first_token_ns, in.first_token_ns);
    EXPECT_EQ(out->outcome, trace::Outcome::kFailed);
    EXPECT_EQ(out->status, 502);
    ASSERT_EQ(out->attempts.size(), 1u);
    EXPECT_DOUBLE_EQ(out->attempts[0].latency_ms, 12.5);
    // Byte-identical when encoded again: what a retry after a restart sends is what was spooled.
    EXPECT_EQ(trace::EncodeRecord(*out), trace::EncodeRecord(in));
}

// Verifies damaged or foreign bytes are refused with a message, never trusted.
TEST(RecordCodec, RefusesBadInput) {
    EXPECT_FALSE(trace::DecodeRecord("").ok());
    EXPECT_FALSE(trace::DecodeRecord("[]").ok());
    EXPECT_FALSE(trace::DecodeRecord(R"({"v":2,"generation_id":"g"})").ok());
    EXPECT_FALSE(trace::DecodeRecord(R"({"v":1})").ok());  // no generation id
    auto bad = trace::DecodeRecord(R"({"v":1,"generation_id":"g","usage":{"prompt_tokens":"x"}})");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("usage.prompt_tokens"), std::string::npos);
    EXPECT_FALSE(trace::DecodeRecord(R"({"v":1,"generation_id":"g","outcome":"maybe"})").ok());
    EXPECT_TRUE(trace::DecodeRecord(R"({"v":1,"generation_id":"g","outcome":"ok"})").ok());
}

// Verifies what the gateway may hold is read back: texts that are not UTF-8 (a byte-cut upstream
// message) and request values nested as deep as the request parser allows.
TEST(RecordCodec, ReadsBackWhatItWrites) {
    trace::TraceRecord r;
    r.generation_id = "gen-1";
    r.error = std::string("cut in the middle of \xc3", 23);
    std::string deep = "1";
    for (int i = 0; i < 31; ++i) deep = "[" + deep + "]";
    r.trace.extra = {{"deep", boost::json::parse(deep)}};
    auto back = trace::DecodeRecord(trace::EncodeRecord(r));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back->error, r.error);
    EXPECT_EQ(back->trace.extra[0].second, r.trace.extra[0].second);
}

// Verifies ISO 8601 times as `beacon spool replay --since` sends them.
TEST(IsoTime, Parses) {
    EXPECT_EQ(base::ParseIsoMillis("1970-01-01T00:00:01Z"), 1000);
    EXPECT_EQ(base::ParseIsoMillis("2026-11-28T10:00:00.5Z"), 1795860000500);
    EXPECT_EQ(base::ParseIsoMillis("2026-11-28T11:00:00+01:00"), 1795860000000);
    EXPECT_FALSE(base::ParseIsoMillis("2026-11-28"));
    EXPECT_FALSE(base::ParseIsoMillis("2026-13-28T10:00:00Z"));
    EXPECT_FALSE(base::ParseIsoMillis("2026-11-28T10:00:00"));
    EXPECT_FALSE(base::ParseIsoMillis("2026-11-28T10:00:00Zjunk"));
}

}  // namespace
}  // namespace beacon::broadcast
