#include "base/ids.h"

#include <openssl/rand.h>

#include <random>
#include <stdexcept>

namespace beacon::base {
namespace {

std::mt19937_64& ThreadRng() {
    thread_local std::mt19937_64 rng = [] {
        uint64_t seed = 0;
        if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof(seed)) != 1) {
            seed = std::random_device{}();
        }
        return std::mt19937_64(seed);
    }();
    return rng;
}

}  // namespace

std::string RandomAlnum(size_t n) {
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Ten 6-bit picks per 64-bit draw, each kept when it falls in the alphabet (62 of 64): as
    // uniform as one draw per character, at a fifth of the draws.
    std::string out(n, '0');
    auto& rng = ThreadRng();
    for (size_t i = 0; i < n;) {
        uint64_t bits = rng();
        for (int k = 0; k < 10 && i < n; ++k, bits >>= 6) {
            const auto pick = static_cast<size_t>(bits & 63);
            if (pick < kAlphabet.size()) out[i++] = kAlphabet[pick];
        }
    }
    return out;
}

std::string NewGenerationId(int64_t unix_seconds) {
    std::string id = "gen-";
    id.reserve(48);
    id += std::to_string(unix_seconds);
    id.push_back('-');
    id += RandomAlnum(20);
    return id;
}

std::string RandomHex(size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
        throw std::runtime_error("the OS random generator failed");
    }
    return HexEncode(raw);
}

std::string HexEncode(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(bytes.size() * 2, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        out[2 * i] = kDigits[c >> 4];
        out[2 * i + 1] = kDigits[c & 0xf];
    }
    return out;
}

bool IsLowerHex(std::string_view s, size_t len) {
    if (s.size() != len) return false;
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace beacon::base
