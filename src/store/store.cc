#include "store/store.h"

#include "base/crypto.h"

namespace beacon::store {

std::string HashKeySecret(std::string_view secret) { return base::Sha256Hex(secret); }

Result<std::optional<ApiKey>> KeyCache::Lookup(std::string_view secret) {
    const std::string hash = HashKeySecret(secret);
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
