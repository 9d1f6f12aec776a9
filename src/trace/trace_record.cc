#include "trace/trace_record.h"

#include <boost/json/serialize.hpp>
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
    boost::json::object params;
    for (auto key : kKeys) {
        if (auto v = body.if_contains(key); v && !v->is_null()) params[key] = *v;
    }
    params["stream"] = stream;
    return params;
}

}  // namespace beacon::trace
