#include "broadcast/sampling.h"

#include <algorithm>
#include <cstring>

#include "base/crypto.h"

namespace beacon::broadcast {

double SamplingPoint(std::string_view destination_id, const trace::TraceRecord& record) {
    std::string seed(destination_id);
    seed += '\n';
    if (!record.session_id.empty()) {
        seed += "session:";
        seed += record.session_id;
    } else {
        seed += "generation:";
        seed += record.generation_id;
    }
    const std::string digest = base::Sha256(seed);
    uint64_t x = 0;
    std::memcpy(&x, digest.data(), sizeof(x));
    return static_cast<double>(x >> 11) / static_cast<double>(uint64_t{1} << 53);
}

bool Accepts(const config::DestinationConfig& d, const trace::TraceRecord& record) {
    if (!d.enabled) return false;
    if (!d.api_key_names.empty()) {
        const bool listed =
            std::any_of(d.api_key_names.begin(), d.api_key_names.end(), [&](const std::string& k) {
                return k == record.api_key_name || k == record.api_key_id;
            });
        if (!listed) return false;
    }
    if (d.sampling_rate >= 1.0) return true;
    return SamplingPoint(d.id, record) < d.sampling_rate;
}

}  // namespace beacon::broadcast
