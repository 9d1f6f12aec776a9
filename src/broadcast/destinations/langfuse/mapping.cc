#include "broadcast/destinations/langfuse/mapping.h"

#include <algorithm>
#include <ctime>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>

#include "base/crypto.h"
#include "base/ids.h"
#include "base/iso_time.h"
#include "base/json_text.h"

namespace beacon::broadcast::langfuse {
namespace {

using namespace std::string_view_literals;
using base::AppendJsonInt;
using base::AppendJsonNumber;
using base::AppendJsonString;

constexpr std::string_view kServiceName = "beacon";
constexpr std::string_view kServiceVersion = "0.1.0";

// Langfuse refuses names over 1000 characters; cut at a UTF-8 character boundary.
std::string_view NameOf(std::string_view name) {
    constexpr size_t kMaxName = 1000;
    if (name.size() <= kMaxName) return name;
    size_t cut = kMaxName;
    while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
    return name.substr(0, cut);
}

std::string_view View(const boost::json::string& s) { return {s.data(), s.size()}; }

std::string ValueText(const boost::json::value& v) {
    if (v.is_string()) return std::string(v.as_string());
    return base::JsonText(v);
}

std::string Truncated(size_t bytes) {
    std::string note;
    AppendJsonString(note, trace::TooLargeNote(bytes));
    return note;
}

std::string OutputJson(const trace::TraceRecord& r) {
    std::string out = R"({"role":"assistant","content":)";
    AppendJsonString(out, r.output_text);
    if (!r.reasoning.empty()) {
        out += R"(,"reasoning":)";
        AppendJsonString(out, r.reasoning);
    }
    if (!r.tool_calls.empty()) {
        out += R"(,"tool_calls":[)";
        for (size_t i = 0; i < r.tool_calls.size(); ++i) {
            const auto& tc = r.tool_calls[i];
            if (i) out.push_back(',');
            out += R"({"id":)";
            AppendJsonString(out, tc.id);
            out += R"(,"type":)";
            AppendJsonString(out, tc.type);
            out += R"(,"function":{"name":)";
            AppendJsonString(out, tc.name);
            out += R"(,"arguments":)";
            AppendJsonString(out, tc.arguments);
            out += "}}";
        }
        out.push_back(']');
    }
    out.push_back('}');
    return out;
}

std::string UsageDetailsJson(const api::Usage& u) {
    const int64_t cached = std::clamp<int64_t>(u.cached_tokens, 0, u.prompt_tokens);
    const int64_t reasoning = std::clamp<int64_t>(u.reasoning_tokens, 0, u.completion_tokens);
    std::string out = R"({"input":)";
    AppendJsonInt(out, std::max<int64_t>(0, u.prompt_tokens - cached));
    out += R"(,"input_cached_tokens":)";
    AppendJsonInt(out, cached);
    out += R"(,"output":)";
    AppendJsonInt(out, std::max<int64_t>(0, u.completion_tokens - reasoning));
    out += R"(,"output_reasoning_tokens":)";
    AppendJsonInt(out, reasoning);
    out += R"(,"total":)";
    AppendJsonInt(out, std::max<int64_t>(0, u.total_tokens));
    out.push_back('}');
    return out;
}

std::string CostDetailsJson(const api::Cost& c) {
    std::string out = R"({"input":)";
    AppendJsonNumber(out, std::max(0.0, c.prompt));
    out += R"(,"output":)";
    AppendJsonNumber(out, std::max(0.0, c.completion));
    out += R"(,"total":)";
    AppendJsonNumber(out, std::max(0.0, c.total));
    out.push_back('}');
    return out;
}

std::string AttemptsJson(const std::vector<trace::Attempt>& attempts, bool privacy) {
    std::string out = "[";
    for (size_t i = 0; i < attempts.size(); ++i) {
        const auto& a = attempts[i];
        if (i) out.push_back(',');
        out += R"({"model":)";
        AppendJsonString(out, a.model);
        out += R"(,"provider":)";
        AppendJsonString(out, a.provider);
        out += R"(,"status":)";
        AppendJsonInt(out, a.status);
        if (!privacy && !a.error.empty()) {
            out += R"(,"error":)";
            AppendJsonString(out, a.error);
        }
        out.push_back('}');
    }
    out.push_back(']');
    return out;
}

// A deterministic UUID-shaped id for a legacy ingestion event.
std::string EventId(std::string_view generation_id, std::string_view kind) {
    std::string h = base::Sha256Hex(std::string(generation_id) + ":event:" + std::string(kind));
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
           "-" + h.substr(20, 12);
}

// --- OTLP attribute writers ---------------------------------------------------------------

class Attributes {
  public:
    explicit Attributes(std::string& out) : out_(out) { out_.push_back('['); }
    void Close() { out_.push_back(']'); }

    void String(std::string_view key, std::string_view value) {
        Key(key);
        Value(value);
    }
    // A key written in our source (a literal): plain ASCII, so it needs no escaping.
    template <size_t N>
    void String(const char (&key)[N], std::string_view value) {
        OpenKey();
        out_.append(key, N - 1);
        CloseKey();
        Value(value);
    }
    // A key made of a literal prefix and text from the request (metadata keys): no string is
    // built for it.
    template <size_t N>
    void String(const char (&prefix)[N], std::string_view suffix, std::string_view value) {
        OpenKey();
        out_.append(prefix, N - 1);
        base::AppendJsonEscaped(out_, suffix);
        CloseKey();
        Value(value);
    }
    void Strings(std::string_view key, const std::vector<std::string_view>& values) {
        Key(key);
        out_ += R"({"arrayValue":{"values":[)";
        for (size_t i = 0; i < values.size(); ++i) {
            if (i) out_.push_back(',');
            out_ += R"({"stringValue":)";
            AppendJsonString(out_, values[i]);
            out_.push_back('}');
        }
        out_ += "]}}}";
    }

  private:
    void Value(std::string_view value) {
        out_ += R"({"stringValue":)"sv;
        AppendJsonString(out_, value);
        out_ += "}}"sv;
    }
    void Key(std::string_view key) {
        OpenKey();
        base::AppendJsonEscaped(out_, key);
        CloseKey();
    }
    // An attribute starts with its separator and its key's opening quote; the caller writes
    // the key's text, escaped, between OpenKey and CloseKey.
    void OpenKey() {
        if (!first_) out_.push_back(',');
        first_ = false;
        out_ += R"({"key":")"sv;
    }
    void CloseKey() { out_ += R"(","value":)"sv; }
    std::string& out_;
    bool first_ = true;
};

void TraceAttributes(Attributes& a, const Mapped& m) {
    a.String("langfuse.trace.name", m.trace_name);
    if (!m.user.empty()) {
        a.String("langfuse.user.id", m.user);
        a.String("user.id", m.user);
    }
    if (!m.session.empty()) {
        a.String("langfuse.session.id", m.session);
        a.String("session.id", m.session);
    }
    a.String("langfuse.environment", m.environment);
    if (!m.release.empty()) a.String("langfuse.release", m.release);
    if (!m.version.empty()) a.String("langfuse.version", m.version);
    if (!m.tags.empty()) a.Strings("langfuse.trace.tags", m.tags);
    for (const auto& [k, v] : m.trace_metadata) a.String("langfuse.trace.metadata.", k, v);
}

void AppendSpan(std::string& out, const Mapped& m, bool is_generation) {
    out += R"({"traceId":")";
    out += m.trace_id;
    out += R"(","spanId":")";
    out += is_generation ? m.generation_id : *m.span_id;
    out.push_back('"');
    const std::string& parent = (is_generation && m.span_id) ? *m.span_id : m.parent_id;
    if (!parent.empty()) {
        out += R"(,"parentSpanId":")";
        out += parent;
        out.push_back('"');
    }
    out += R"(,"name":)";
    AppendJsonString(out, is_generation ? m.generation_name : m.span_name);
    out += R"(,"kind":1,"startTimeUnixNano":")";
    AppendJsonInt(out, m.start_ns);
    out += R"(","endTimeUnixNano":")";
    AppendJsonInt(out, m.end_ns);
    out += R"(","attributes":)";
    Attributes a(out);
    TraceAttributes(a, m);
    a.String("langfuse.observation.type", is_generation ? "generation" : "span");
    a.String("langfuse.observation.level", LevelName(m.level));
    if (!m.status_message.empty())
        a.String("langfuse.observation.status_message", m.status_message);
    if (is_generation) {
        a.String("langfuse.observation.model.name", m.model);
        a.String("langfuse.observation.model.parameters", m.model_parameters_json);
        if (auto input = m.input_json()) a.String("langfuse.observation.input", *input);
        if (m.output_json) a.String("langfuse.observation.output", *m.output_json);
        a.String("langfuse.observation.usage_details", m.usage_details_json);
        a.String("langfuse.observation.cost_details", m.cost_details_json);
        if (m.completion_start_ns) {
            a.String("langfuse.observation.completion_start_time",
                     base::IsoMillis(*m.completion_start_ns));
        }
        for (const auto& [k, v] : m.observation_metadata) {
            a.String("langfuse.observation.metadata.", k, v);
        }
    }
    a.Close();
    // Integer status codes: 2 = ERROR, 1 = OK, 0 = unset (warnings are neither).
    out += R"(,"status":{"code":)";
    if (m.level == Level::kError) {
        out += R"(2,"message":)";
        AppendJsonString(out, m.status_message);
    } else {
        out.push_back(m.level == Level::kDefault ? '1' : '0');
    }
    out += "}}";
}

// --- legacy ingestion writers ---------------------------------------------------------------

void AppendStringMap(std::string& out,
                     const std::vector<std::pair<std::string_view, std::string>>& kv) {
    out.push_back('{');
    for (size_t i = 0; i < kv.size(); ++i) {
        if (i) out.push_back(',');
        AppendJsonString(out, kv[i].first);
        out.push_back(':');
        AppendJsonString(out, kv[i].second);
    }
    out.push_back('}');
}

void AppendField(std::string& out, std::string_view key, std::string_view value) {
    out.push_back(',');
    AppendJsonString(out, key);
    out.push_back(':');
    AppendJsonString(out, value);
}

void AppendRawField(std::string& out, std::string_view key, std::string_view json) {
    out.push_back(',');
    AppendJsonString(out, key);
    out.push_back(':');
    out += json;
}

void AppendEventHead(std::string& out, std::string_view id, std::string_view type,
                     const Mapped& m) {
    out += R"({"id":)";
    AppendJsonString(out, id);
    out += R"(,"type":)";
    AppendJsonString(out, type);
    out += R"(,"timestamp":)";
    AppendJsonString(out, base::IsoMillis(m.end_ns));
    out += R"(,"body":{"id":)";
}

void AppendObservationCommon(std::string& out, const Mapped& m, std::string_view parent,
                             std::string_view name) {
    AppendField(out, "traceId", m.trace_id);
    if (!parent.empty()) AppendField(out, "parentObservationId", parent);
    AppendField(out, "name", name);
    AppendField(out, "startTime", base::IsoMillis(m.start_ns));
    AppendField(out, "endTime", base::IsoMillis(m.end_ns));
    AppendField(out, "level", LevelName(m.level));
    if (!m.status_message.empty()) AppendField(out, "statusMessage", m.status_message);
    AppendField(out, "environment", m.environment);
}

}  // namespace

std::string TraceIdFrom(std::string_view value) {
    if (base::IsLowerHex(value, 32)) return std::string(value);
    // The requests of one trace share its trace_id: remember the last thousand per thread
    // (a SHA-256 was ~5% of the export thread); at most ~1 MB, trace ids being <= 1 KiB.
    // Looked up by string_view (transparent hash), so a hit allocates only the returned id.
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    thread_local std::unordered_map<std::string, std::string, Hash, std::equal_to<>> recent;
    if (auto it = recent.find(value); it != recent.end()) return it->second;
    std::string id = base::Sha256Hex(value).substr(0, 32);
    if (recent.size() >= 1024) recent.clear();
    recent.emplace(std::string(value), id);
    return id;
}

std::string ObservationIdFrom(std::string_view value) {
    if (base::IsLowerHex(value, 16)) return std::string(value);
    return base::Sha256Hex(value).substr(0, 16);
}

Environment NormalizeEnvironment(std::string_view raw) {
    std::string lower(raw);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    bool ok = !lower.empty() && lower.size() <= 40 && lower.rfind("langfuse", 0) != 0;
    for (char c : lower) {
        ok &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    }
    if (ok) return {lower, ""};
    return {"default", std::string(raw)};
}

std::string_view LevelName(Level level) {
    switch (level) {
        case Level::kDefault:
            return "DEFAULT";
        case Level::kWarning:
            return "WARNING";
        case Level::kError:
            return "ERROR";
    }
    return "DEFAULT";
}

Mapped Map(const trace::TraceRecord& r, bool privacy) {
    Mapped m;
    // Without a trace_id, the trace id and the generation id come from the same digest.
    const std::string generation_digest = base::Sha256Hex(r.generation_id);
    m.trace_id =
        r.trace.trace_id.empty() ? generation_digest.substr(0, 32) : TraceIdFrom(r.trace.trace_id);
    m.generation_id = generation_digest.substr(0, 16);
    if (!r.trace.span_name.empty()) {
        m.span_id = base::Sha256Hex(r.generation_id + ":span").substr(0, 16);
        m.span_name = NameOf(r.trace.span_name);
    }
    if (!r.trace.parent_span_id.empty()) m.parent_id = ObservationIdFrom(r.trace.parent_span_id);
    m.trace_name = r.trace.trace_name.empty() ? kDefaultTraceName : NameOf(r.trace.trace_name);
    m.generation_name =
        r.trace.generation_name.empty() ? kDefaultGenerationName : NameOf(r.trace.generation_name);
    m.user = r.user;
    m.session = r.session_id;
    m.environment = "default";

    for (const auto& [key, value] : r.trace.extra) {
        if (key == "environment" && value.is_string()) {
            auto env = NormalizeEnvironment(value.as_string());
            m.environment = env.name;
            if (!env.rejected.empty()) m.trace_metadata.emplace_back("environment", env.rejected);
            continue;
        }
        if (key == "release" && value.is_string()) {
            m.release = View(value.as_string());
            continue;
        }
        if (key == "version" && value.is_string()) {
            m.version = View(value.as_string());
            continue;
        }
        if (key == "tags" && value.is_array()) {
            const auto& arr = value.as_array();
            if (std::all_of(arr.begin(), arr.end(), [](const auto& v) { return v.is_string(); })) {
                for (const auto& t : arr) m.tags.push_back(View(t.as_string()));
                std::sort(m.tags.begin(), m.tags.end());
                m.tags.erase(std::unique(m.tags.begin(), m.tags.end()), m.tags.end());
                continue;
            }
        }
        m.trace_metadata.emplace_back(key, ValueText(value));
    }

    m.model = r.model;
    m.model_parameters_json = r.model_parameters_json;
    if (!privacy) {
        if (r.input_json.size() > kMaxContentBytes) {
            m.input_note = Truncated(r.input_json.size());
        } else if (!r.input_json.empty()) {
            m.input_text = &r.input_json;
        }
        if (r.outcome == trace::Outcome::kOk || !r.output_text.empty() || !r.tool_calls.empty()) {
            std::string out = OutputJson(r);
            m.output_json = out.size() > kMaxContentBytes ? Truncated(out.size()) : std::move(out);
        }
    }
    m.usage_details_json = UsageDetailsJson(r.usage);
    m.cost_details_json = CostDetailsJson(r.cost);
    m.start_ns = r.start_ns;
    m.end_ns = std::max(r.end_ns, r.start_ns);
    m.completion_start_ns = r.first_token_ns;

    switch (r.outcome) {
        case trace::Outcome::kOk:
            if (r.finish_reason == "length" || r.finish_reason == "content_filter") {
                m.level = Level::kWarning;
                m.status_message = "finish_reason: " + r.finish_reason;
            }
            break;
        case trace::Outcome::kCancelled:
            m.level = Level::kWarning;
            m.status_message = "cancelled: the client closed the connection";
            break;
        case trace::Outcome::kFailed:
        case trace::Outcome::kRejected:
            m.level = Level::kError;
            if (privacy || r.error.empty()) {
                m.status_message = (r.error_type.empty() ? std::string("error") : r.error_type) +
                                   " (" + std::to_string(r.status) + ")";
            } else {
                m.status_message = r.error;
            }
            break;
    }

    auto& meta = m.observation_metadata;
    meta.reserve(7);
    meta.emplace_back("provider", r.provider);
    meta.emplace_back("generation_id", r.generation_id);
    meta.emplace_back("finish_reason", r.finish_reason);
    meta.emplace_back("native_finish_reason", r.native_finish_reason);
    meta.emplace_back("streamed", r.streamed ? "true" : "false");
    meta.emplace_back("api_key_name", r.api_key_name);
    meta.emplace_back("attempts", AttemptsJson(r.attempts, privacy));
    return m;
}

std::string EncodeOtlp(const std::vector<trace::RecordPtr>& batch, bool privacy) {
    // Environment and release are resource attributes too, so records are grouped by them.
    std::map<std::pair<std::string, std::string_view>, std::vector<Mapped>> groups;
    // Room for the whole body up front: growing it at the end of a batch copied the ~400 KB
    // written so far into a buffer twice as large. Per record: the attributes, and the prompt
    // and answer with room for their escapes.
    size_t room = 4096;
    for (const auto& r : batch) {
        room += 4096 + (r->input_json.size() + r->output_text.size() + r->reasoning.size()) * 5 / 4;
        Mapped m = Map(*r, privacy);
        auto key = std::make_pair(m.environment, m.release);
        groups[key].push_back(std::move(m));
    }
    std::string out;
    out.reserve(room);
    out += R"({"resourceSpans":[)";
    bool first_group = true;
    for (const auto& [key, mapped] : groups) {
        if (!first_group) out.push_back(',');
        first_group = false;
        out += R"({"resource":{"attributes":)";
        Attributes ra(out);
        ra.String("service.name", kServiceName);
        // No service.version: Langfuse would read it as the trace's version.
        ra.String("langfuse.environment", key.first);
        if (!key.second.empty()) ra.String("langfuse.release", key.second);
        ra.Close();
        out += R"(},"scopeSpans":[{"scope":{"name":"beacon","version":")";
        out += kServiceVersion;
        out += R"("},"spans":[)";
        bool first_span = true;
        for (const auto& m : mapped) {
            if (m.span_id) {
                if (!first_span) out.push_back(',');
                first_span = false;
                AppendSpan(out, m, false);
            }
            if (!first_span) out.push_back(',');
            first_span = false;
            AppendSpan(out, m, true);
        }
        out += "]}]}";
    }
    out += "]}";
    return out;
}

std::vector<std::string> EventIds(const std::string& generation_id) {
    return {EventId(generation_id, "trace"), EventId(generation_id, "span"),
            EventId(generation_id, "generation")};
}

IngestionBatch EncodeIngestion(const std::vector<trace::RecordPtr>& batch, bool privacy,
                               const std::function<bool(const std::string&)>& already_accepted) {
    IngestionBatch result;
    std::string& out = result.body;
    out += R"({"batch":[)";
    bool first = true;
    std::string event;
    // Appends the event just written to `event` unless Langfuse already has it.
    auto emit = [&](std::string id, size_t owner) {
        if (already_accepted && already_accepted(id)) return;
        if (!first) out.push_back(',');
        first = false;
        out += event;
        result.event_owner.emplace_back(std::move(id), owner);
    };
    for (size_t i = 0; i < batch.size(); ++i) {
        const auto& r = *batch[i];
        const Mapped m = Map(r, privacy);

        event.clear();
        std::string id = EventId(r.generation_id, "trace");
        AppendEventHead(event, id, "trace-create", m);
        AppendJsonString(event, m.trace_id);
        AppendField(event, "timestamp", base::IsoMillis(m.start_ns));
        AppendField(event, "name", m.trace_name);
        if (!m.user.empty()) AppendField(event, "userId", m.user);
        if (!m.session.empty()) AppendField(event, "sessionId", m.session);
        if (!m.release.empty()) AppendField(event, "release", m.release);
        if (!m.version.empty()) AppendField(event, "version", m.version);
        if (!m.tags.empty()) {
            event += R"(,"tags":[)";
            for (size_t t = 0; t < m.tags.size(); ++t) {
                if (t) event.push_back(',');
                AppendJsonString(event, m.tags[t]);
            }
            event.push_back(']');
        }
        event += R"(,"metadata":)";
        AppendStringMap(event, m.trace_metadata);
        AppendField(event, "environment", m.environment);
        event += "}}";
        emit(std::move(id), i);

        if (m.span_id) {
            event.clear();
            id = EventId(r.generation_id, "span");
            AppendEventHead(event, id, "span-create", m);
            AppendJsonString(event, *m.span_id);
            AppendObservationCommon(event, m, m.parent_id, m.span_name);
            event += "}}";
            emit(std::move(id), i);
        }

        event.clear();
        id = EventId(r.generation_id, "generation");
        AppendEventHead(event, id, "generation-create", m);
        AppendJsonString(event, m.generation_id);
        AppendObservationCommon(event, m, m.span_id ? *m.span_id : m.parent_id, m.generation_name);
        if (m.completion_start_ns) {
            AppendField(event, "completionStartTime", base::IsoMillis(*m.completion_start_ns));
        }
        AppendField(event, "model", m.model);
        AppendRawField(event, "modelParameters", m.model_parameters_json);
        if (auto input = m.input_json()) AppendRawField(event, "input", *input);
        if (m.output_json) AppendRawField(event, "output", *m.output_json);
        AppendRawField(event, "usageDetails", m.usage_details_json);
        AppendRawField(event, "costDetails", m.cost_details_json);
        event += R"(,"metadata":)";
        AppendStringMap(event, m.observation_metadata);
        event += "}}";
        emit(std::move(id), i);
    }
    out += R"(],"metadata":{"batch_size":)";
    AppendJsonInt(out, static_cast<int64_t>(result.event_owner.size()));
    out += R"(,"sdk_name":"beacon","sdk_version":")";
    out += kServiceVersion;
    out += "\"}}";
    return result;
}

}  // namespace beacon::broadcast::langfuse
