// Process-wide logging set-up. Logs go to stderr, one JSON object per line by default, so that
// they can be shipped as they are; `text` format is for people at a terminal.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace beacon::base {

enum class LogFormat { kJson, kText };

// Installs the default logger. Safe to call more than once (the last call wins).
void InitLogging(std::string_view level, LogFormat format);

// Names the calling thread (at most 15 characters show) for top, perf and gdb.
void NameThisThread(const char* name);

// Escapes a value for inclusion inside a JSON string in a log message.
std::string JsonEscape(std::string_view s);

}  // namespace beacon::base
