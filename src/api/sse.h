// Server-Sent Events: an incremental parser for upstream streams and the framing we write.
// The parser follows the WHATWG event-stream rules that matter for LLM APIs: LF, CRLF or CR
// line ends, comment lines starting with ':', multi-line data joined with '\n', a leading BOM.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace beacon::api {

struct SseEvent {
    std::string event;  // the `event:` field, empty for the default "message"
    std::string data;   // data lines joined with '\n'
};

class SseParser {
  public:
    // Events larger than `max_event_bytes` put the parser in the failed state.
    explicit SseParser(size_t max_event_bytes = 8 * 1024 * 1024)
        : max_event_bytes_(max_event_bytes) {}

    // Feeds bytes; calls `on_event` for every complete event. Returns false once an event
    // exceeded the size bound (the stream must then be abandoned).
    bool Feed(std::string_view bytes, const std::function<void(SseEvent&&)>& on_event);

    bool failed() const { return failed_; }

  private:
    // One byte after the BOM check; false once the parser has failed.
    bool Consume(char c, const std::function<void(SseEvent&&)>& on_event);
    void ProcessLine(std::string_view line, const std::function<void(SseEvent&&)>& on_event);

    size_t max_event_bytes_;
    std::string line_;
    SseEvent pending_;
    bool has_data_ = false;
    bool last_was_cr_ = false;
    size_t bom_matched_ = 0;  // bytes of a leading BOM seen so far
    bool bom_checked_ = false;
    bool failed_ = false;
};

// "data: <payload>\n\n"
std::string SseData(std::string_view payload);

// The keep-alive comment OpenRouter sends while waiting: ": OPENROUTER PROCESSING\n\n".
inline constexpr std::string_view kSseKeepAlive = ": OPENROUTER PROCESSING\n\n";
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace beacon::api
