#include "trace/record_codec.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "base/json_text.h"

namespace beacon::trace {
namespace json = boost::json;

namespace {

// A small writer for one flat JSON object: Key() adds the separator and the quoted key.
class ObjectWriter {
  public:
    explicit ObjectWriter(std::string& out) : out_(out) { out_.push_back('{'); }
    void End() { out_.push_back('}'); }

    void Str(std::string_view key, std::string_view v) {
        Key(key);
        base::AppendJsonString(out_, v);
    }
    void Int(std::string_view key, int64_t v) {
        Key(key);
        base::AppendJsonInt(out_, v);
    }
    void Num(std::string_view key, double v) {
        Key(key);
        base::AppendJsonNumber(out_, v);
    }
    void Bool(std::string_view key, bool v) {
        Key(key);
        out_ += v ? "true" : "false";
    }
    void Raw(std::string_view key, std::string_view json_text) {
        Key(key);
        out_ += json_text;
    }
    std::string& Key(std::string_view key) {
        if (!first_) out_.push_back(',');
        first_ = false;
        base::AppendJsonString(out_, key);
        out_.push_back(':');
        return out_;
    }

  private:
    std::string& out_;
    bool first_ = true;
};

// Reads fields of one object, remembering the first problem.
class ObjectReader {
  public:
    ObjectReader(const json::object& o, std::string path) : obj_(&o), path_(std::move(path)) {}
    ObjectReader(const json::value& v, std::string path) : path_(std::move(path)) {
        if (v.is_object()) {
            obj_ = &v.get_object();
        } else {
            Fail("", "an object");
        }
    }

    std::string Str(std::string_view key) {
        const json::value* v = Find(key);
        if (!v) return {};
        if (!v->is_string()) return Fail(key, "a string"), std::string();
        return std::string(v->get_string());
    }
    int64_t Int(std::string_view key) {
        const json::value* v = Find(key);
        if (!v) return 0;
        if (v->is_int64()) return v->get_int64();
        if (v->is_uint64() && v->get_uint64() <= INT64_MAX) {
            return static_cast<int64_t>(v->get_uint64());
        }
        return Fail(key, "an integer"), 0;
    }
    double Num(std::string_view key) {
        const json::value* v = Find(key);
        if (!v) return 0;
        if (v->is_number()) return v->to_number<double>();
        return Fail(key, "a number"), 0;
    }
    bool Bool(std::string_view key) {
        const json::value* v = Find(key);
        if (!v) return false;
        if (!v->is_bool()) return Fail(key, "a boolean"), false;
        return v->get_bool();
    }
    const json::object* Obj(std::string_view key) {
        const json::value* v = Find(key);
        if (!v) return nullptr;
        if (!v->is_object()) return Fail(key, "an object"), nullptr;
        return &v->get_object();
    }
    const json::array* Arr(std::string_view key) {
        const json::value* v = Find(key);
        if (!v) return nullptr;
        if (!v->is_array()) return Fail(key, "an array"), nullptr;
        return &v->get_array();
    }
    bool Has(std::string_view key) const { return obj_ && obj_->if_contains(key); }

    void Fail(std::string_view key, std::string_view expected) {
        if (error_.empty()) {
            error_ = path_ + (key.empty() ? "" : "." + std::string(key)) + " must be " +
                     std::string(expected);
        }
    }
    const std::string& error() const { return error_; }

  private:
    const json::value* Find(std::string_view key) {
        if (!obj_) return nullptr;
        const json::value* v = obj_->if_contains(key);
        return v && !v->is_null() ? v : nullptr;
    }

    const json::object* obj_ = nullptr;
    std::string path_;
    std::string error_;
};

std::string_view OutcomeName(Outcome o) {
    switch (o) {
        case Outcome::kOk:
            return "ok";
        case Outcome::kFailed:
            return "failed";
        case Outcome::kRejected:
            return "rejected";
        case Outcome::kCancelled:
            return "cancelled";
    }
    return "ok";
}

std::optional<Outcome> OutcomeFromName(std::string_view s) {
    if (s == "ok") return Outcome::kOk;
    if (s == "failed") return Outcome::kFailed;
    if (s == "rejected") return Outcome::kRejected;
    if (s == "cancelled") return Outcome::kCancelled;
    return std::nullopt;
}

}  // namespace

std::string EncodeRecord(const TraceRecord& r) {
    std::string out;
    out.reserve(1024 + r.input_json.size() + r.output_text.size() + r.reasoning.size());
    ObjectWriter w(out);
    w.Int("v", kRecordFormatVersion);
    w.Str("generation_id", r.generation_id);
    w.Str("workspace_id", r.workspace_id);
    w.Str("api_key_id", r.api_key_id);
    w.Str("api_key_name", r.api_key_name);
    w.Str("user", r.user);
    w.Str("session_id", r.session_id);
    {
        std::string& o = w.Key("trace");
        ObjectWriter t(o);
        t.Bool("present", r.trace.present);
        t.Str("trace_id", r.trace.trace_id);
        t.Str("trace_name", r.trace.trace_name);
        t.Str("span_name", r.trace.span_name);
        t.Str("generation_name", r.trace.generation_name);
        t.Str("parent_span_id", r.trace.parent_span_id);
        // An array of pairs keeps the request's key order.
        std::string& e = t.Key("extra");
        e.push_back('[');
        for (size_t i = 0; i < r.trace.extra.size(); ++i) {
            if (i) e.push_back(',');
            e.push_back('[');
            base::AppendJsonString(e, r.trace.extra[i].first);
            e.push_back(',');
            base::AppendJsonValue(e, r.trace.extra[i].second);
            e.push_back(']');
        }
        e.push_back(']');
        t.End();
    }
    w.Str("model", r.model);
    w.Str("provider", r.provider);
    w.Raw("model_parameters", r.model_parameters_json);
    w.Bool("streamed", r.streamed);
    w.Str("input_json", r.input_json);
    w.Str("output_text", r.output_text);
    w.Str("reasoning", r.reasoning);
    {
        std::string& a = w.Key("tool_calls");
        a.push_back('[');
        for (size_t i = 0; i < r.tool_calls.size(); ++i) {
            if (i) a.push_back(',');
            ObjectWriter t(a);
            t.Str("id", r.tool_calls[i].id);
            t.Str("type", r.tool_calls[i].type);
            t.Str("name", r.tool_calls[i].name);
            t.Str("arguments", r.tool_calls[i].arguments);
            t.End();
        }
        a.push_back(']');
    }
    w.Str("finish_reason", r.finish_reason);
    w.Str("native_finish_reason", r.native_finish_reason);
    {
        std::string& u = w.Key("usage");
        ObjectWriter t(u);
        t.Int("prompt_tokens", r.usage.prompt_tokens);
        t.Int("completion_tokens", r.usage.completion_tokens);
        t.Int("total_tokens", r.usage.total_tokens);
        t.Int("cached_tokens", r.usage.cached_tokens);
        t.Int("reasoning_tokens", r.usage.reasoning_tokens);
        t.Bool("known", r.usage.known);
        t.End();
    }
    {
        std::string& c = w.Key("cost");
        ObjectWriter t(c);
        t.Num("prompt", r.cost.prompt);
        t.Num("completion", r.cost.completion);
        t.Num("total", r.cost.total);
        t.End();
    }
    w.Int("start_ns", r.start_ns);
    w.Int("end_ns", r.end_ns);
    if (r.first_token_ns) w.Int("first_token_ns", *r.first_token_ns);
    w.Str("outcome", OutcomeName(r.outcome));
    w.Int("status", r.status);
    w.Str("error_type", r.error_type);
    w.Str("error", r.error);
    {
        std::string& a = w.Key("attempts");
        a.push_back('[');
        for (size_t i = 0; i < r.attempts.size(); ++i) {
            if (i) a.push_back(',');
            ObjectWriter t(a);
            t.Str("model", r.attempts[i].model);
            t.Str("provider", r.attempts[i].provider);
            t.Int("status", r.attempts[i].status);
            t.Str("error", r.attempts[i].error);
            t.Num("latency_ms", r.attempts[i].latency_ms);
            t.End();
        }
        a.push_back(']');
    }
    w.End();
    return out;
}

Result<TraceRecord> DecodeRecord(std::string_view text) {
    boost::system::error_code ec;
    // What the encoder wrote: request values nest two levels deeper here than in the request,
    // and texts cut at a byte limit (or not UTF-8 to begin with) are kept as they were.
    json::parse_options options;
    options.max_depth = 128;
    options.allow_invalid_utf8 = true;
    json::value doc = json::parse(text, ec, {}, options);
    if (ec) return Error{"spool record is not JSON: " + ec.message()};
    ObjectReader rd(doc, "record");
    if (rd.Int("v") != kRecordFormatVersion) {
        return Error{"spool record has format version " + std::to_string(rd.Int("v")) +
                     ", this Beacon reads " + std::to_string(kRecordFormatVersion)};
    }
    TraceRecord r;
    r.generation_id = rd.Str("generation_id");
    if (r.generation_id.empty()) rd.Fail("generation_id", "a non-empty string");
    r.workspace_id = rd.Str("workspace_id");
    r.api_key_id = rd.Str("api_key_id");
    r.api_key_name = rd.Str("api_key_name");
    r.user = rd.Str("user");
    r.session_id = rd.Str("session_id");
    if (const json::object* t = rd.Obj("trace")) {
        ObjectReader tr(*t, "record.trace");
        r.trace.present = tr.Bool("present");
        r.trace.trace_id = tr.Str("trace_id");
        r.trace.trace_name = tr.Str("trace_name");
        r.trace.span_name = tr.Str("span_name");
        r.trace.generation_name = tr.Str("generation_name");
        r.trace.parent_span_id = tr.Str("parent_span_id");
        if (const json::array* extra = tr.Arr("extra")) {
            for (const auto& pair : *extra) {
                const json::array* p = pair.if_array();
                if (!p || p->size() != 2 || !(*p)[0].is_string()) {
                    tr.Fail("extra", "an array of [key, value] pairs");
                    break;
                }
                r.trace.extra.emplace_back(std::string((*p)[0].get_string()), (*p)[1]);
            }
        }
        if (!tr.error().empty()) return Error{tr.error()};
    }
    r.model = rd.Str("model");
    r.provider = rd.Str("provider");
    if (const json::object* mp = rd.Obj("model_parameters")) {
        r.model_parameters_json = base::JsonText(*mp);
    }
    r.streamed = rd.Bool("streamed");
    r.input_json = rd.Str("input_json");
    r.output_text = rd.Str("output_text");
    r.reasoning = rd.Str("reasoning");
    if (const json::array* calls = rd.Arr("tool_calls")) {
        for (const auto& c : *calls) {
            ObjectReader cr(c, "record.tool_calls[]");
            ToolCall tc;
            tc.id = cr.Str("id");
            tc.type = cr.Str("type");
            tc.name = cr.Str("name");
            tc.arguments = cr.Str("arguments");
            if (!cr.error().empty()) return Error{cr.error()};
            r.tool_calls.push_back(std::move(tc));
        }
    }
    r.finish_reason = rd.Str("finish_reason");
    r.native_finish_reason = rd.Str("native_finish_reason");
    if (const json::object* u = rd.Obj("usage")) {
        ObjectReader ur(*u, "record.usage");
        r.usage.prompt_tokens = ur.Int("prompt_tokens");
        r.usage.completion_tokens = ur.Int("completion_tokens");
        r.usage.total_tokens = ur.Int("total_tokens");
        r.usage.cached_tokens = ur.Int("cached_tokens");
        r.usage.reasoning_tokens = ur.Int("reasoning_tokens");
        r.usage.known = ur.Bool("known");
        if (!ur.error().empty()) return Error{ur.error()};
    }
    if (const json::object* c = rd.Obj("cost")) {
        ObjectReader cr(*c, "record.cost");
        r.cost.prompt = cr.Num("prompt");
        r.cost.completion = cr.Num("completion");
        r.cost.total = cr.Num("total");
        if (!cr.error().empty()) return Error{cr.error()};
    }
    r.start_ns = rd.Int("start_ns");
    r.end_ns = rd.Int("end_ns");
    if (rd.Has("first_token_ns")) r.first_token_ns = rd.Int("first_token_ns");
    if (auto o = OutcomeFromName(rd.Str("outcome"))) {
        r.outcome = *o;
    } else {
        rd.Fail("outcome", "ok, failed, rejected or cancelled");
    }
    r.status = static_cast<int>(rd.Int("status"));
    r.error_type = rd.Str("error_type");
    r.error = rd.Str("error");
    if (const json::array* attempts = rd.Arr("attempts")) {
        for (const auto& a : *attempts) {
            ObjectReader ar(a, "record.attempts[]");
            Attempt at;
            at.model = ar.Str("model");
            at.provider = ar.Str("provider");
            at.status = static_cast<int>(ar.Int("status"));
            at.error = ar.Str("error");
            at.latency_ms = ar.Num("latency_ms");
            if (!ar.error().empty()) return Error{ar.error()};
            r.attempts.push_back(std::move(at));
        }
    }
    if (!rd.error().empty()) return Error{rd.error()};
    return r;
}

}  // namespace beacon::trace
