// The on-disk form of a TraceRecord, for the Broadcast spool: one JSON object per record with a
// format version, so that a spool written by one Beacon is read by the next. Decode checks every
// field's type and never trusts the bytes (a spool file can be damaged).
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "trace/trace_record.h"

namespace beacon::trace {

inline constexpr int kRecordFormatVersion = 1;

std::string EncodeRecord(const TraceRecord& record);

// Fails with a message naming the first field that is missing or of the wrong type.
Result<TraceRecord> DecodeRecord(std::string_view text);

}  // namespace beacon::trace
