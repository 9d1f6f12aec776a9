// Hot paths of a request and of its trace: parsing and validating the request, building the
// upstream body, rewriting a streamed chunk, encoding records for Langfuse (OTLP/JSON and
// gzip), and appending records to the spool (encode + SQLite group commit). Issue 6's target for
// OTLP encoding: at least 200k spans per second on one core.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>

#include "api/chat_request.h"
#include "base/gzip.h"
#include "base/json_arena.h"
#include "base/json_text.h"
#include "broadcast/destinations/langfuse/mapping.h"
#include "broadcast/spool.h"
#include "providers/openai_compatible/translate.h"
#include "trace/record_codec.h"

namespace {

namespace json = boost::json;
using namespace beacon;

// About 1 KiB, with a trace object, as the load benchmark sends.
const std::string kRequest =
    R"({"model":"openai/gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant that summarises documents for busy engineers."},{"role":"user","content":"Summarize this document: Beacon is a self-hosted LLM gateway written in C++20. Apps call it exactly as they call OpenRouter, and it broadcasts a trace of every call to Langfuse without any instrumentation in the app. The gateway routes each call to an upstream provider, answers the app, and then, off the request path, sends the trace. Delivery is asynchronous, batched, retried and durable."}],"temperature":0.7,"max_tokens":256,"user":"user_12345","session_id":"session_abc","trace":{"trace_id":"workflow_12345","trace_name":"Document Processing Pipeline","span_name":"Summarization Step","generation_name":"Generate Summary","environment":"production","pipeline_version":"2.1.0"}})";

const std::string kChunk =
    R"({"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" summarises"},"finish_reason":null}]})";

trace::RecordPtr Record() {
    auto parsed = api::ParseChatRequest(kRequest);
    auto r = std::make_shared<trace::TraceRecord>();
    r->generation_id = "gen-1700000000-abcdefghijklmnopqrst";
    r->api_key_name = "bench";
    r->user = parsed->user;
    r->session_id = parsed->session_id;
    r->trace = parsed->trace;
    r->model = "openai/gpt-4o";
    r->provider = "OpenAI";
    r->model_parameters_json = trace::ModelParametersJson(parsed->body, false);
    r->input_json = json::serialize(parsed->body.at("messages"));
    r->output_text =
        "Beacon is a C++20 gateway that is OpenRouter-compatible and sends traces to Langfuse.";
    r->finish_reason = "stop";
    r->native_finish_reason = "stop";
    r->usage = {120, 30, 150, 20, 5, true};
    r->cost = {0.0003, 0.0003, 0.0006};
    r->start_ns = 1700000000123000000;
    r->end_ns = 1700000001456000000;
    r->attempts.push_back({"openai/gpt-4o", "OpenAI", 200, "", 12.5});
    return r;
}

void BM_ParseRequest(benchmark::State& state) {
    for (auto _ : state) {
        auto r = api::ParseChatRequest(kRequest);
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRequest.size()));
}
BENCHMARK(BM_ParseRequest);

// The request's text to a DOM: in default (heap) storage (0), and in a request's arena (1), as
// the gateway parses it. simdjson's scan copied into the same DOM was tried here: 731 ns against
// Boost.JSON's 628 ns into the arena, so it did not go in (docs/benchmarks.md, session 6).
void BM_ParseJson(benchmark::State& state) {
    const bool in_arena = state.range(0) == 1;
    for (auto _ : state) {
        base::JsonArena arena;
        boost::system::error_code ec;
        json::value v = json::parse(kRequest, ec, in_arena ? arena.storage() : json::storage_ptr());
        benchmark::DoNotOptimize(v);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRequest.size()));
}
BENCHMARK(BM_ParseJson)->Arg(0)->Arg(1);

void BM_BuildUpstreamBody(benchmark::State& state) {
    auto parsed = api::ParseChatRequest(kRequest);
    for (auto _ : state) {
        auto body = providers::openai_compatible::BuildUpstreamBody(*parsed, "gpt-4o", false);
        benchmark::DoNotOptimize(body);
    }
}
BENCHMARK(BM_BuildUpstreamBody);

// What the gateway does per streamed chunk: parse, stamp our fields, serialise.
void BM_RewriteChunk(benchmark::State& state) {
    for (auto _ : state) {
        auto v = json::parse(kChunk);
        auto& o = v.as_object();
        o["id"] = "gen-1700000000-abcdefghijklmnopqrst";
        o["provider"] = "OpenAI";
        o["model"] = "openai/gpt-4o";
        auto out = base::JsonText(o);
        benchmark::DoNotOptimize(out);
    }
}
BENCHMARK(BM_RewriteChunk);

// Spans per second: each record with a span_name is two spans (span + generation).
void BM_EncodeOtlp(benchmark::State& state) {
    std::vector<trace::RecordPtr> batch(static_cast<size_t>(state.range(0)), Record());
    for (auto _ : state) {
        auto body = broadcast::langfuse::EncodeOtlp(batch, false);
        benchmark::DoNotOptimize(body);
    }
    state.counters["spans/s"] = benchmark::Counter(
        static_cast<double>(state.iterations() * batch.size() * 2), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EncodeOtlp)->Arg(1)->Arg(100);

void BM_EncodeOtlpGzip(benchmark::State& state) {
    std::vector<trace::RecordPtr> batch(100, Record());
    const std::string plain = broadcast::langfuse::EncodeOtlp(batch, false);
    state.counters["bytes_in"] = static_cast<double>(plain.size());
    state.counters["bytes_out"] = static_cast<double>(base::Gzip(plain).size());
    for (auto _ : state) {
        auto body = base::Gzip(broadcast::langfuse::EncodeOtlp(batch, false));
        benchmark::DoNotOptimize(body);
    }
    state.counters["spans/s"] = benchmark::Counter(
        static_cast<double>(state.iterations() * batch.size() * 2), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EncodeOtlpGzip);

// The spool thread's work per record: the on-disk encoding alone, then groups of `range(0)`
// records encoded and committed in one transaction (WAL, synchronous=NORMAL), with the delivered
// rows deleted again so the file stays small, as in steady state.
void BM_EncodeRecord(benchmark::State& state) {
    auto record = Record();
    for (auto _ : state) {
        auto body = trace::EncodeRecord(*record);
        benchmark::DoNotOptimize(body);
    }
    state.counters["records/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EncodeRecord);

void BM_SpoolAppend(benchmark::State& state) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("beacon-bench-spool-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto spool = broadcast::Spool::Open(
        {(dir / "spool.db").string(), int64_t{1} << 30, broadcast::SpoolSync::kNormal});
    if (!spool) {
        state.SkipWithError(spool.error().message.c_str());
        return;
    }
    auto record = Record();
    const auto dests = broadcast::JoinDestinations({"cfg-langfuse"});
    const auto group = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        std::vector<broadcast::Spool::NewRecord> rows;
        rows.reserve(group);
        for (size_t i = 0; i < group; ++i) {
            rows.push_back({1700000000000, dests, trace::EncodeRecord(*record)});
        }
        // The cursor trails by one group: each commit deletes the previous group's rows.
        const int64_t cursor = (*spool)->last_seq();
        auto r = (*spool)->Commit(rows, {{"cfg-langfuse", cursor}});
        if (!r) state.SkipWithError(r.error().message.c_str());
    }
    state.counters["records/s"] = benchmark::Counter(
        static_cast<double>(state.iterations() * group), benchmark::Counter::kIsRate);
    spool->reset();
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SpoolAppend)->Arg(1)->Arg(50)->Arg(250);

// The reference: a fixed workload that is none of our code (sorting 4096 pseudo-random ints), so
// its time follows only the machine's speed at the moment. bench/micro/run prints every result
// as a ratio to it, which is what to compare across runs on a noisy machine.
void BM_Reference(benchmark::State& state) {
    std::vector<uint32_t> input(4096);
    uint32_t x = 12345;
    for (auto& v : input) v = x = x * 1103515245u + 12345u;
    for (auto _ : state) {
        auto v = input;
        std::sort(v.begin(), v.end());
        benchmark::DoNotOptimize(v.data());
    }
}
BENCHMARK(BM_Reference);

}  // namespace
