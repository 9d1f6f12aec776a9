// Destination secrets at rest: AES-256-GCM under a master key from BEACON_MASTER_KEY (64 hex
// characters) or, when unset, from <data_dir>/master.key, created with mode 0600 on first start.
// Secrets are shown only masked.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace beacon::admin {

class SecretBox {
  public:
    // Loads (or creates) the master key as described above.
    static Result<SecretBox> Open(const std::string& data_dir);
    static SecretBox FromKeyForTest(std::string key32) { return SecretBox(std::move(key32)); }

    // Seals `secret` for the row `row_id` (a sealed secret cannot be moved to another row).
    std::string Seal(std::string_view secret, std::string_view row_id) const;
    Result<std::string> Unseal(std::string_view sealed, std::string_view row_id) const;

  private:
    explicit SecretBox(std::string key) : key_(std::move(key)) {}
    std::string key_;
};

// "sk-lf-...abcd": enough to recognise a key, never enough to use it.
std::string MaskSecret(std::string_view secret);

}  // namespace beacon::admin
