#include "store/store.h"

#include <openssl/crypto.h>

#include <array>
#include <functional>

#include "base/crypto.h"

namespace beacon::store {

std::string HashKeySecret(std::string_view secret) { return base::Sha256Hex(secret); }

namespace {

// HashKeySecret for the secrets this thread saw last: keep-alive clients send the same key with
// every request, and the digest was ~4% of the request thread's instructions. The secrets stay
// in this thread's memory, as they do in its request buffers; the comparison takes the same
// time whatever the bytes, so it tells a caller nothing about a cached secret.
std::string CachedSecretHash(std::string_view secret) {
    struct Slot {
        std::string secret;
        std::string hash;
    };
    thread_local std::array<Slot, 64> slots;
    auto& slot = slots[std::hash<std::string_view>{}(secret) % slots.size()];
    if (!secret.empty() && slot.secret.size() == secret.size() &&
        CRYPTO_memcmp(slot.secret.data(), secret.data(), secret.size()) == 0) {
        return slot.hash;
    }
    slot.hash = HashKeySecret(secret);
    slot.secret.assign(secret);
    return slot.hash;
}

}  // namespace

Result<std::optional<ApiKey>> KeyCache::Lookup(std::string_view secret) {
    const std::string hash = CachedSecretHash(secret);
    const auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(mu_);
        if (auto it = entries_.find(hash); it != entries_.end() && it->second.expires > now) {
            return it->second.key;
        }
    }
    auto found = store_.FindKeyBySecret(secret);
    if (!found) return found.error();
    std::optional<ApiKey> active = *found;
    if (active && active->revoked) active.reset();
    std::lock_guard lock(mu_);
    // Unknown secrets are cached too, so a client retrying a bad key costs no query; the map
    // is bounded by clearing it when it grows past a size no real deployment reaches.
    if (entries_.size() > 100000) entries_.clear();
    entries_[hash] = Entry{active, now + ttl_};
    return active;
}

}  // namespace beacon::store
