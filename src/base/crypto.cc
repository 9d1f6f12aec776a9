#include "base/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "base/ids.h"

namespace beacon::base {

std::string Sha256(std::string_view data) {
    // OpenSSL 3 looks the algorithm up (locks, a hash table) on every EVP_sha256() digest: a
    // third of the export thread's time in profiles. Fetch it once; reuse one context per thread.
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    struct Context {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        ~Context() { EVP_MD_CTX_free(ctx); }
    };
    thread_local Context c;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (md == nullptr || c.ctx == nullptr || !EVP_DigestInit_ex2(c.ctx, md, nullptr) ||
        !EVP_DigestUpdate(c.ctx, data.data(), data.size()) ||
        !EVP_DigestFinal_ex(c.ctx, digest, &len)) {
        throw std::runtime_error("sha256 failed");
    }
    return std::string(reinterpret_cast<char*>(digest), len);
}

std::string Sha256Hex(std::string_view data) { return HexEncode(Sha256(data)); }

std::string Base64Encode(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(data.data()),
                                  static_cast<int>(data.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

struct CipherCtx {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

const unsigned char* Bytes(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string SealAesGcm(std::string_view key, std::string_view plaintext,
                       std::string_view associated) {
    if (key.size() != 32) throw std::invalid_argument("AES-256-GCM needs a 32-byte key");
    std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    if (RAND_bytes(o, kNonceBytes) != 1) throw std::runtime_error("RAND_bytes failed");
    CipherCtx c;
    int len = 0;
    bool ok = c.ctx && EVP_EncryptInit_ex2(c.ctx, EVP_aes_256_gcm(), Bytes(key), o, nullptr) == 1 &&
              EVP_EncryptUpdate(c.ctx, nullptr, &len, Bytes(associated),
                                static_cast<int>(associated.size())) == 1 &&
              EVP_EncryptUpdate(c.ctx, o + kNonceBytes, &len, Bytes(plaintext),
                                static_cast<int>(plaintext.size())) == 1 &&
              EVP_EncryptFinal_ex(c.ctx, o + kNonceBytes + len, &len) == 1 &&
              EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, kTagBytes,
                                  o + kNonceBytes + plaintext.size()) == 1;
    if (!ok) throw std::runtime_error("AES-256-GCM encryption failed");
    return out;
}

bool OpenAesGcm(std::string_view key, std::string_view sealed, std::string_view associated,
                std::string* plaintext) {
    if (key.size() != 32 || sealed.size() < kNonceBytes + kTagBytes) return false;
    const size_t n = sealed.size() - kNonceBytes - kTagBytes;
    std::string out(n, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    const auto* s = Bytes(sealed);
    std::string tag(sealed.substr(kNonceBytes + n));
    CipherCtx c;
    int len = 0;
    bool ok = c.ctx && EVP_DecryptInit_ex2(c.ctx, EVP_aes_256_gcm(), Bytes(key), s, nullptr) == 1 &&
              EVP_DecryptUpdate(c.ctx, nullptr, &len, Bytes(associated),
                                static_cast<int>(associated.size())) == 1 &&
              EVP_DecryptUpdate(c.ctx, o, &len, s + kNonceBytes, static_cast<int>(n)) == 1 &&
              EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
              EVP_DecryptFinal_ex(c.ctx, o + len, &len) == 1;
    if (!ok) return false;
    *plaintext = std::move(out);
    return true;
}

bool HexDecode(std::string_view hex, std::string* out) {
    if (hex.size() % 2) return false;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string bytes;
    bytes.reserve(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) {
        const int hi = nibble(hex[i]);
        const int lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) return false;
        bytes.push_back(static_cast<char>(hi * 16 + lo));
    }
    *out = std::move(bytes);
    return true;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace beacon::base
