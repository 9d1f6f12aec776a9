#include "trace/trace_record.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <iterator>
#include <string_view>

namespace beacon::trace {

void CapContent(TraceRecord& r) {
    auto note = [](size_t bytes) {
        return "[content of " + std::to_string(bytes) +
               " bytes not exported: larger than Langfuse accepts]";
    };
    if (r.input_json.size() > kMaxContentBytes) {
        r.input_json = boost::json::serialize(boost::json::value(note(r.input_json.size())));
    }
    if (r.output_text.size() > kMaxContentBytes) r.output_text = note(r.output_text.size());
    if (r.reasoning.size() > kMaxContentBytes) r.reasoning = note(r.reasoning.size());
}

boost::json::object ModelParameters(const boost::json::object& body, bool stream) {
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
    // lookup in a small object compares every key, and this ran on every request.
    boost::json::object params;
    for (const auto& member : body) {
        const std::string_view key = member.key();
        if (member.value().is_null() ||
            std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
            continue;
        }
        params[key] = member.value();
    }
    params["stream"] = stream;
    return params;
}

}  // namespace beacon::trace
