#include "api/sse.h"

namespace beacon::api {

namespace {
constexpr std::string_view kBom = "\xEF\xBB\xBF";
}  // namespace

bool SseParser::Feed(std::string_view bytes, const std::function<void(SseEvent&&)>& on_event) {
    if (failed_) return false;
    for (char c : bytes) {
        if (!bom_checked_) {
            // A UTF-8 byte order mark may open the stream; it is not part of the first field.
            // It can arrive split across reads, so it is matched byte by byte.
            if (c == kBom[bom_matched_]) {
                if (++bom_matched_ == kBom.size()) bom_checked_ = true;
                continue;
            }
            bom_checked_ = true;
            for (size_t i = 0; i < bom_matched_; ++i) {
                if (!Consume(kBom[i], on_event)) return false;
            }
        }
        if (!Consume(c, on_event)) return false;
    }
    return true;
}

bool SseParser::Consume(char c, const std::function<void(SseEvent&&)>& on_event) {
    if (c == '\n' && last_was_cr_) {
        last_was_cr_ = false;  // the LF of a CRLF pair: the line already ended at CR
        return true;
    }
    last_was_cr_ = false;
    if (c == '\r' || c == '\n') {
        last_was_cr_ = (c == '\r');
        ProcessLine(line_, on_event);
        line_.clear();
        return !failed_;
    }
    line_.push_back(c);
    if (line_.size() + pending_.data.size() > max_event_bytes_) failed_ = true;
    return !failed_;
}

void SseParser::ProcessLine(std::string_view line,
                            const std::function<void(SseEvent&&)>& on_event) {
    if (line.empty()) {
        if (has_data_) on_event(std::move(pending_));
        pending_ = SseEvent{};
        has_data_ = false;
        return;
    }
    if (line.front() == ':') return;  // comment (keep-alive)
    std::string_view field = line;
    std::string_view value;
    if (auto colon = line.find(':'); colon != std::string_view::npos) {
        field = line.substr(0, colon);
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
        if (has_data_) pending_.data.push_back('\n');
        pending_.data.append(value);
        has_data_ = true;
        if (pending_.data.size() > max_event_bytes_) failed_ = true;
    } else if (field == "event") {
        pending_.event.assign(value);
    }
    // `id` and `retry` carry nothing an LLM API uses; other fields are ignored by the spec.
}

std::string SseData(std::string_view payload) {
    std::string out;
    out.reserve(payload.size() + 8);
    out.append("data: ");
    out.append(payload);
    out.append("\n\n");
    return out;
}

}  // namespace beacon::api
