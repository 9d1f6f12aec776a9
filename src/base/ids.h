// Identifiers: generation ids, random tokens, hex helpers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace beacon::base {

// "gen-<unix seconds>-<20 alphanumerics>", as OpenRouter forms them.
std::string NewGenerationId(int64_t unix_seconds);

// `n` random alphanumerics from a per-thread generator seeded by the OS.
std::string RandomAlnum(size_t n);

// `bytes` bytes from the OS CSPRNG, hex encoded (2*bytes characters).
std::string RandomHex(size_t bytes);

// Lower-case hex encoding of raw bytes.
std::string HexEncode(std::string_view bytes);

// True when `s` has exactly `len` characters, all lowercase hex digits.
bool IsLowerHex(std::string_view s, size_t len);

}  // namespace beacon::base
