// gzip (RFC 1952) compression for export bodies.
#pragma once

#include <string>
#include <string_view>

namespace beacon::base {

// Compresses `data` into a gzip member (ISA-L). Level 1..9 as in zlib, mapped onto ISA-L's
// 1..3: 1 is the fastest (the default: export bodies are JSON with long repeated keys, which
// compress well even at level 1).
std::string Gzip(std::string_view data, int level = 1);

// Decompresses a gzip member; empty optional-like failure is reported by `ok`.
std::string Gunzip(std::string_view data, bool* ok);

}  // namespace beacon::base
