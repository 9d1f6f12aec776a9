#include "trace/trace_record.h"

#include <algorithm>
#include <boost/json/object.hpp>
#include <iterator>
#include <string_view>

#include "base/json_text.h"

namespace beacon::trace {

std::string TooLargeNote(size_t bytes) {
    return "[content of " + std::to_string(bytes) +
           " bytes not exported: larger than Langfuse accepts]";
}

void CapContent(TraceRecord& r) {
    if (r.input_json.size() > kMaxContentBytes) {
        std::string text;
        base::AppendJsonString(text, TooLargeNote(r.input_json.size()));
        r.input_json = std::move(text);
    }
    if (r.output_text.size() > kMaxContentBytes) r.output_text = TooLargeNote(r.output_text.size());
    if (r.reasoning.size() > kMaxContentBytes) r.reasoning = TooLargeNote(r.reasoning.size());
}

std::string ModelParametersJson(const boost::json::object& body, bool stream) {
    static constexpr std::string_view kKeys[] = {"temperature",
                                                 "top_p",
                                                 "top_k",
                                                 "max_tokens",
                                                 "max_completion_tokens",
                                                 "frequency_penalty",
                                                 "presence_penalty",
                                                 "repetition_penalty",
                                                 "min_p",
                                                 "top_a",
                                                 "seed",
                                                 "stop"};
    // One pass over the request's members (in their order) instead of a lookup per key: a
    // lookup in a small object compares every key, and this ran on every request. Written as
    // text at once: the object it replaces was built, copied into the record, serialised for
    // every export and freed on another thread.
    std::string out = "{";
    for (const auto& member : body) {
        const std::string_view key = member.key();
        if (member.value().is_null() ||
            std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
            continue;
        }
        base::AppendJsonString(out, key);
        out.push_back(':');
        base::AppendJsonValue(out, member.value());
        out.push_back(',');
    }
    out += stream ? R"("stream":true})" : R"("stream":false})";
    return out;
}

}  // namespace beacon::trace
