#include "trace/trace_record.h"

#include <string_view>

namespace beacon::trace {

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
