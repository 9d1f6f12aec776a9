// Hashing primitives over OpenSSL.
#pragma once

#include <string>
#include <string_view>

namespace beacon::base {

// Raw 32-byte SHA-256 digest.
std::string Sha256(std::string_view data);

// Lower-case hex SHA-256 digest (64 characters).
std::string Sha256Hex(std::string_view data);

// Standard base64 with padding (RFC 4648 section 4), e.g. for HTTP Basic credentials.
std::string Base64Encode(std::string_view data);

// Constant-time equality for secrets of equal length.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace beacon::base
