// Token usage and cost of one generation, as Beacon reports and broadcasts them.
#pragma once

#include <cstdint>

namespace beacon::api {

struct Usage {
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int64_t total_tokens = 0;
    int64_t cached_tokens = 0;     // part of prompt_tokens
    int64_t reasoning_tokens = 0;  // part of completion_tokens
    bool known = false;            // the provider reported usage
};

// USD. `prompt` includes cached prompt tokens at their own price.
struct Cost {
    double prompt = 0;
    double completion = 0;
    double total = 0;
};

}  // namespace beacon::api
