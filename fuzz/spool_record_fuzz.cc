// Fuzzes the spool's record decoder: a spool file can be damaged, so its bytes are untrusted. Any
// input either fails with a message or decodes to a record that encodes again to a text that
// decodes to the same encoding (the form a retry after a restart sends must be stable).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "trace/record_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto first = beacon::trace::DecodeRecord(text);
    if (!first) {
        BEACON_FUZZ_CHECK(!first.error().message.empty(), "a refusal without a message");
        return 0;
    }
    BEACON_FUZZ_CHECK(!first->generation_id.empty(), "a record without a generation id");
    const std::string encoded = beacon::trace::EncodeRecord(*first);
    auto second = beacon::trace::DecodeRecord(encoded);
    BEACON_FUZZ_CHECK(second.ok(), "an encoded record does not decode");
    BEACON_FUZZ_CHECK(beacon::trace::EncodeRecord(*second) == encoded, "encoding is not stable");
    return 0;
}
