// Fuzzes the SSE parser: the first byte chooses a split point and a size bound, the rest is the
// stream. Feeding the stream in two pieces must give exactly the events (and the failure state)
// of feeding it whole, no event may exceed the bound, and every single-line event must survive
// a round trip through SseData.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/sse.h"
#include "fuzz_check.h"

namespace {

using beacon::api::SseEvent;
using beacon::api::SseParser;

struct Outcome {
    std::vector<SseEvent> events;
    bool ok = true;
};

Outcome Parse(const std::vector<std::string_view>& pieces, size_t max_event_bytes) {
    SseParser parser(max_event_bytes);
    Outcome out;
    for (auto piece : pieces) {
        out.ok = parser.Feed(piece, [&](SseEvent&& e) { out.events.push_back(std::move(e)); });
        BEACON_FUZZ_CHECK(out.ok == !parser.failed(), "Feed's result disagrees with failed()");
        if (!out.ok) break;
    }
    return out;
}

bool SameEvents(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].event != b[i].event || a[i].data != b[i].data) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t control = data[0];
    const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
    const size_t split = stream.empty() ? 0 : control % (stream.size() + 1);
    // Odd control bytes use a small bound so that the failure path is exercised too.
    const size_t max_event_bytes = (control & 1) ? 64 : 8 * 1024 * 1024;

    const Outcome whole = Parse({stream}, max_event_bytes);
    const Outcome halves = Parse({stream.substr(0, split), stream.substr(split)}, max_event_bytes);
    BEACON_FUZZ_CHECK(whole.ok == halves.ok, "splitting the stream changed the failure state");
    BEACON_FUZZ_CHECK(SameEvents(whole.events, halves.events),
                      "splitting the stream changed events");

    for (const SseEvent& e : whole.events) {
        BEACON_FUZZ_CHECK(e.data.size() <= max_event_bytes, "an event exceeds the size bound");
        if (e.data.find_first_of("\r\n") != std::string::npos) continue;
        const Outcome again = Parse({beacon::api::SseData(e.data)}, 8 * 1024 * 1024);
        BEACON_FUZZ_CHECK(again.ok && again.events.size() == 1 && again.events[0].data == e.data &&
                              again.events[0].event.empty(),
                          "SseData does not round-trip");
    }
    return 0;
}
