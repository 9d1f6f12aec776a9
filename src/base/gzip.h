// gzip (RFC 1952) compression for export bodies.
#pragma once

#include <string>
#include <string_view>

namespace beacon::base {

// Compresses `data` into a gzip member. Level 1..9; 6 is zlib's default balance.
std::string Gzip(std::string_view data, int level = 6);

// Decompresses a gzip member; empty optional-like failure is reported by `ok`.
std::string Gunzip(std::string_view data, bool* ok);

}  // namespace beacon::base
