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

// AES-256-GCM with a random 96-bit nonce. The output is nonce || ciphertext || 16-byte tag;
// `associated` is authenticated but not stored (bind a secret to its row, e.g. its id).
std::string SealAesGcm(std::string_view key32, std::string_view plaintext,
                       std::string_view associated);
// The inverse; false when the key, the associated data or the bytes do not match.
bool OpenAesGcm(std::string_view key32, std::string_view sealed, std::string_view associated,
                std::string* plaintext);

// Decodes lower- or upper-case hex; false on odd length or a non-hex character.
bool HexDecode(std::string_view hex, std::string* out);

// Constant-time equality for secrets of equal length.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace beacon::base
