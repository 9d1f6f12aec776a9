// Which records a destination receives: the API-key filter, then deterministic sampling.
#pragma once

#include <string_view>

#include "config/config.h"
#include "trace/trace_record.h"

namespace beacon::broadcast {

// A uniform number in [0, 1) from sha256(destination id, session id or else generation id), so
// a session is kept or dropped whole, and differently per destination.
double SamplingPoint(std::string_view destination_id, const trace::TraceRecord& record);

// The key filter (empty = every key) and the sampling rate.
bool Accepts(const config::DestinationConfig& destination, const trace::TraceRecord& record);

}  // namespace beacon::broadcast
