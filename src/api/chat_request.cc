#include "api/chat_request.h"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <tuple>

#include "base/json_text.h"

namespace beacon::api {
namespace json = boost::json;
namespace {

Error FieldError(std::string_view field, std::string_view what) {
    return Error{std::string(field) + ": " + std::string(what)};
}

const char* KindName(const json::value& v) {
    switch (v.kind()) {
        case json::kind::null:
            return "null";
        case json::kind::bool_:
            return "a boolean";
        case json::kind::int64:
        case json::kind::uint64:
        case json::kind::double_:
            return "a number";
        case json::kind::string:
            return "a string";
        case json::kind::array:
            return "an array";
        case json::kind::object:
            return "an object";
    }
    return "a value";
}

// A request object's members, with a 64-bit set of (first byte, length) signatures of its keys:
// a field whose bit is clear is absent without a lookup. Most optional fields are absent, and a
// lookup in a small Boost.JSON object compares every key (~30 lookups were ~5% of the request
// thread).
class Members {
  public:
    explicit Members(const json::object& obj) : obj_(obj) {
        for (const auto& m : obj) bits_ |= Bit(m.key());
    }
    // The value of `key`, or nullptr when absent.
    const json::value* find(std::string_view key) const {
        if ((bits_ & Bit(key)) == 0) return nullptr;
        return obj_.if_contains(key);
    }

  private:
    static uint64_t Bit(std::string_view key) {
        const unsigned first = key.empty() ? 0 : static_cast<unsigned char>(key[0]);
        return uint64_t{1} << ((first * 7u + key.size()) % 64);
    }
    const json::object& obj_;
    uint64_t bits_ = 0;
};

// Present and not null.
bool Given(const json::value* v) { return v != nullptr && !v->is_null(); }

Status Expect(bool ok, std::string_view field, const json::value& v, std::string_view expected) {
    if (ok) return Status::Ok();
    return FieldError(field,
                      std::string("expected ") + std::string(expected) + ", got " + KindName(v));
}

Status NumberInRange(const Members& body, std::string_view field, double lo, double hi) {
    const json::value* found = body.find(field);
    if (!Given(found)) return Status::Ok();
    const auto& v = *found;
    // fmt prints 2.0 as "2"; json::serialize would print "2E0".
    auto expected = [&] { return fmt::format("a number between {} and {}", lo, hi); };
    if (!v.is_number()) return Expect(false, field, v, expected());
    double d = v.to_number<double>();
    if (!std::isfinite(d) || d < lo || d > hi) return FieldError(field, "expected " + expected());
    return Status::Ok();
}

Status IntegerAtLeast(const Members& body, std::string_view field, int64_t lo,
                      std::optional<int64_t> hi = std::nullopt) {
    const json::value* found = body.find(field);
    if (!Given(found)) return Status::Ok();
    const auto& v = *found;
    auto expected = [&] {
        if (hi) return "an integer between " + std::to_string(lo) + " and " + std::to_string(*hi);
        return "an integer >= " + std::to_string(lo);
    };
    bool is_int = v.is_int64() || v.is_uint64() ||
                  (v.is_double() && std::floor(v.get_double()) == v.get_double() &&
                   std::isfinite(v.get_double()));
    if (!is_int) return Expect(false, field, v, expected());
    double d = v.to_number<double>();
    if (d < static_cast<double>(lo) || (hi && d > static_cast<double>(*hi))) {
        return FieldError(field, "expected " + expected());
    }
    return Status::Ok();
}

Status OfKind(const Members& body, std::string_view field, json::kind kind,
              std::string_view expected) {
    const json::value* found = body.find(field);
    if (!Given(found)) return Status::Ok();
    return Expect(found->kind() == kind, field, *found, expected);
}

Status ValidateContent(const json::value& content, const std::string& where) {
    if (content.is_null() || content.is_string()) return Status::Ok();
    if (!content.is_array()) return Expect(false, where, content, "a string or an array of parts");
    size_t i = 0;
    for (const auto& part : content.as_array()) {
        std::string pw = where + "[" + std::to_string(i++) + "]";
        if (!part.is_object()) return Expect(false, pw, part, "an object");
        auto type = part.as_object().if_contains("type");
        if (!type || !type->is_string()) return FieldError(pw + ".type", "required string");
        if (type->as_string() == "text") {
            auto text = part.as_object().if_contains("text");
            if (!text || !text->is_string()) return FieldError(pw + ".text", "required string");
        }
    }
    return Status::Ok();
}

Status ValidateMessages(const json::value& v) {
    if (!v.is_array()) return Expect(false, "messages", v, "an array");
    const auto& arr = v.as_array();
    if (arr.empty()) return FieldError("messages", "must contain at least one message");
    for (size_t i = 0; i < arr.size(); ++i) {
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!arr[i].is_object()) return Expect(false, where, arr[i], "an object");
        const auto& msg = arr[i].as_object();
        auto role = msg.if_contains("role");
        if (!role || !role->is_string()) return FieldError(where + ".role", "required string");
        std::string_view r = role->as_string();
        if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool") {
            return FieldError(where + ".role",
                              "must be one of system, developer, user, assistant, tool");
        }
        if (auto content = msg.if_contains("content")) {
            if (auto s = ValidateContent(*content, where + ".content"); !s) return s;
        } else if (r != "assistant") {
            return FieldError(where + ".content", "required");
        }
        if (r == "tool") {
            auto id = msg.if_contains("tool_call_id");
            if (!id || !id->is_string()) {
                return FieldError(where + ".tool_call_id", "required string for role tool");
            }
        }
        if (auto calls = msg.if_contains("tool_calls"); calls && !calls->is_null()) {
            if (!calls->is_array()) return Expect(false, where + ".tool_calls", *calls, "an array");
        }
    }
    return Status::Ok();
}

// The string at `v` (empty when absent or null), at most `max_len` characters; `prefix` and
// `field` name it in errors.
Result<std::string> StringValue(const json::value* v, std::string_view prefix,
                                std::string_view field, size_t max_len) {
    if (!Given(v)) return std::string();
    auto path = [&] { return std::string(prefix) + std::string(field); };
    if (!v->is_string()) return Expect(false, path(), *v, "a string").error();
    const auto& s = v->as_string();
    if (s.size() > max_len) {
        return FieldError(path(), "must be at most " + std::to_string(max_len) + " characters");
    }
    return std::string(s);
}

Result<std::string> OptionalString(const Members& obj, std::string_view field, size_t max_len) {
    return StringValue(obj.find(field), "", field, max_len);
}

Status ParseTrace(const json::value& v, TraceOptions& out) {
    if (!v.is_object()) return Expect(false, "trace", v, "an object");
    out.present = true;
    const auto& obj = v.as_object();
    struct Known {
        std::string_view key;
        std::string* target;
    };
    const Known known[] = {{"trace_id", &out.trace_id},
                           {"trace_name", &out.trace_name},
                           {"span_name", &out.span_name},
                           {"generation_name", &out.generation_name},
                           {"parent_span_id", &out.parent_span_id}};
    for (const auto& kv : obj) {
        bool matched = false;
        for (const auto& k : known) {
            if (kv.key() != k.key) continue;
            matched = true;
            auto s = StringValue(&kv.value(), "trace.", k.key, kMaxTraceStringLength);
            if (!s) return s.error();
            *k.target = std::move(s.value());
        }
        // Default storage: the record keeps these after the request's arena is gone.
        if (!matched) out.extra.emplace_back(std::string(kv.key()), json::value(kv.value(), {}));
    }
    return Status::Ok();
}

// Boost.JSON reads numbers beyond the double range (1e400) as infinity and writes them back as
// `Infinity`, which is not JSON: the body could not be forwarded upstream or traced. Returns true
// when `v` holds such a number, with `path` set to where it is (".tools[0].x").
bool FindNonFinite(const json::value& v, std::string& path) {
    switch (v.kind()) {
        case json::kind::double_:
            return !std::isfinite(v.get_double());
        case json::kind::array: {
            const auto& arr = v.get_array();
            for (size_t i = 0; i < arr.size(); ++i) {
                if (FindNonFinite(arr[i], path)) {
                    path.insert(0, "[" + std::to_string(i) + "]");
                    return true;
                }
            }
            return false;
        }
        case json::kind::object:
            for (const auto& kv : v.get_object()) {
                if (FindNonFinite(kv.value(), path)) {
                    path.insert(0, "." + std::string(kv.key()));
                    return true;
                }
            }
            return false;
        default:
            return false;
    }
}

Status ValidateMetadata(const json::value& v) {
    if (v.is_null()) return Status::Ok();
    if (!v.is_object()) return Expect(false, "metadata", v, "an object of strings");
    const auto& obj = v.as_object();
    if (obj.size() > 16) return FieldError("metadata", "at most 16 pairs");
    for (const auto& kv : obj) {
        if (kv.key().size() > 64) return FieldError("metadata", "keys are at most 64 characters");
        if (!kv.value().is_string() || kv.value().as_string().size() > 512) {
            return FieldError("metadata." + std::string(kv.key()),
                              "expected a string of at most 512 characters");
        }
    }
    return Status::Ok();
}

}  // namespace

std::optional<std::string> ValidateSessionId(std::string_view value) {
    if (value.size() > kMaxSessionIdLength) {
        return "x-session-id: must be at most " + std::to_string(kMaxSessionIdLength) +
               " characters";
    }
    return std::nullopt;
}

Result<ChatRequest> ParseChatRequest(std::string_view text, json::storage_ptr storage) {
    boost::system::error_code ec;
    json::value root = json::parse(text, ec, storage);
    if (ec) return Error{"body: malformed JSON (" + ec.message() + ")"};
    if (!root.is_object()) return Error{"body: expected a JSON object"};
    // Nesting is bounded by the parser's max_depth (32), so the recursion is too.
    if (std::string path; FindNonFinite(root, path)) {
        return FieldError(path.substr(1), "number out of range");
    }

    // Made in the same storage, so the move below takes the parsed object instead of copying it.
    ChatRequest req(std::move(storage));
    req.body = std::move(root.as_object());
    const Members b(req.body);

    if (auto m = OptionalString(b, "model", 256); !m) {
        return m.error();
    } else {
        req.model = std::move(m.value());
    }
    if (const auto* v = b.find("models"); Given(v)) {
        if (!v->is_array()) return Expect(false, "models", *v, "an array").error();
        for (const auto& m : v->as_array()) {
            if (!m.is_string()) return Expect(false, "models[]", m, "a string").error();
            req.models.emplace_back(m.as_string());
        }
    }
    if (const auto* v = b.find("stream"); Given(v)) {
        if (!v->is_bool()) return Expect(false, "stream", *v, "a boolean").error();
        req.stream = v->as_bool();
    }

    const auto* messages = b.find("messages");
    const auto* prompt = b.find("prompt");
    if (messages && !messages->is_null()) {
        if (auto s = ValidateMessages(*messages); !s) return s.error();
    } else if (prompt && !prompt->is_null()) {
        if (!prompt->is_string()) return Expect(false, "prompt", *prompt, "a string").error();
    } else {
        return FieldError("messages", "required (an array of messages)");
    }

    for (auto [field, lo, hi] : std::initializer_list<std::tuple<std::string_view, double, double>>{
             {"temperature", 0, 2},
             {"top_p", 0, 1},
             {"frequency_penalty", -2, 2},
             {"presence_penalty", -2, 2},
             {"repetition_penalty", 0, 2},
             {"min_p", 0, 1},
             {"top_a", 0, 1}}) {
        if (auto s = NumberInRange(b, field, lo, hi); !s) return s.error();
    }
    if (auto s = IntegerAtLeast(b, "max_tokens", 1); !s) return s.error();
    if (auto s = IntegerAtLeast(b, "max_completion_tokens", 1); !s) return s.error();
    if (auto s = IntegerAtLeast(b, "top_k", 0); !s) return s.error();
    if (auto s = IntegerAtLeast(b, "top_logprobs", 0, 20); !s) return s.error();
    if (auto s = IntegerAtLeast(b, "seed", INT64_MIN); !s) return s.error();
    for (auto [field, kind, expected] :
         std::initializer_list<std::tuple<std::string_view, json::kind, std::string_view>>{
             {"logprobs", json::kind::bool_, "a boolean"},
             {"parallel_tool_calls", json::kind::bool_, "a boolean"},
             {"tools", json::kind::array, "an array"},
             {"response_format", json::kind::object, "an object"},
             {"provider", json::kind::object, "an object"},
             {"reasoning", json::kind::object, "an object"},
             {"plugins", json::kind::array, "an array"},
             {"transforms", json::kind::array, "an array"},
             {"logit_bias", json::kind::object, "an object"},
             {"stream_options", json::kind::object, "an object"},
             {"usage", json::kind::object, "an object"}}) {
        if (auto s = OfKind(b, field, kind, expected); !s) return s.error();
    }
    if (const auto* found = b.find("stop"); Given(found)) {
        const auto& v = *found;
        if (v.is_array()) {
            if (v.as_array().size() > 4) return FieldError("stop", "at most 4 sequences");
            for (const auto& s : v.as_array()) {
                if (!s.is_string()) return Expect(false, "stop[]", s, "a string").error();
            }
        } else if (!v.is_string()) {
            return Expect(false, "stop", v, "a string or an array of strings").error();
        }
    }
    if (const auto* found = b.find("tool_choice"); Given(found)) {
        const auto& v = *found;
        if (!v.is_string() && !v.is_object()) {
            return Expect(false, "tool_choice", v, "a string or an object").error();
        }
    }
    if (const auto* v = b.find("route"); Given(v)) {
        if (!v->is_string()) return Expect(false, "route", *v, "a string").error();
    }
    if (const auto* v = b.find("metadata")) {
        if (auto s = ValidateMetadata(*v); !s) return s.error();
    }

    if (auto u = OptionalString(b, "user", kMaxUserLength); !u) {
        return u.error();
    } else {
        req.user = std::move(u.value());
    }
    if (auto s = OptionalString(b, "session_id", kMaxSessionIdLength); !s) {
        return s.error();
    } else {
        req.session_id = std::move(s.value());
    }
    if (const auto* v = b.find("trace"); Given(v)) {
        if (auto s = ParseTrace(*v, req.trace); !s) return s.error();
    }
    if (Given(messages)) req.messages_json = base::JsonText(*messages);
    return req;
}

}  // namespace beacon::api
