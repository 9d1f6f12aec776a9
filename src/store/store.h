// The configuration store: workspaces and API keys (later: Broadcast settings and
// destinations). Implementations: sqlite/ (default, one machine). Every method is thread-safe
// and blocking; callers on an I/O thread keep to cheap point lookups (see KeyCache).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"

namespace beacon::store {

inline constexpr std::string_view kDefaultWorkspace = "default";

struct ApiKey {
    std::string id;            // stable id, "key_<hex>"
    std::string name;          // label chosen by the operator
    std::string workspace_id;  // the workspace whose Broadcast settings apply
    std::string hint;          // "sk-bcn-v1-abc...xyz", safe to show
    bool management = false;   // may change settings; not for inference
    bool revoked = false;
    int64_t created_at = 0;  // unix seconds
};

struct CreatedKey {
    ApiKey key;
    std::string secret;  // the only time the plaintext exists; never stored
};

// A Broadcast destination managed through the API. The secret is stored sealed
// (AES-256-GCM, see admin/secrets.h); the store never sees it in clear.
struct StoredDestination {
    std::string id;  // "dst_<hex>"
    std::string workspace_id;
    std::string type;  // "langfuse"
    std::string name;
    bool enabled = true;
    bool privacy_mode = false;
    double sampling_rate = 1.0;
    std::vector<std::string> api_key_ids;  // empty: every key
    std::string public_key;
    std::string secret_sealed;
    std::string base_url;
    std::string transport = "otlp";
    std::string server_version;
    std::string project_id;
    std::string project_name;
    int64_t created_at = 0;
    int64_t updated_at = 0;
};

class Store {
  public:
    virtual ~Store() = default;

    virtual Result<CreatedKey> CreateKey(std::string_view name, bool management) = 0;
    virtual Result<std::vector<ApiKey>> ListKeys() = 0;
    // Revokes by id or by name; an unknown key is an error.
    virtual Status RevokeKey(std::string_view id_or_name) = 0;
    // Looks a presented secret up by its hash. Revoked keys are returned with revoked=true.
    virtual Result<std::optional<ApiKey>> FindKeyBySecret(std::string_view secret) = 0;

    // Broadcast on/off per workspace (off until turned on).
    virtual Result<bool> GetBroadcastEnabled(std::string_view workspace_id) = 0;
    virtual Status SetBroadcastEnabled(std::string_view workspace_id, bool enabled) = 0;
    virtual Result<std::vector<std::string>> WorkspacesWithBroadcast() = 0;

    // Destinations of one workspace, or of all when `workspace_id` is empty; by creation time.
    virtual Result<std::vector<StoredDestination>> ListDestinations(
        std::string_view workspace_id) = 0;
    virtual Result<std::optional<StoredDestination>> GetDestination(std::string_view id) = 0;
    // Inserts or replaces by id.
    virtual Status PutDestination(const StoredDestination& destination) = 0;
    // An unknown id is an error.
    virtual Status DeleteDestination(std::string_view id) = 0;
};

// Opens (creating if needed) the SQLite store at `path` and migrates its schema.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

// The hash under which a key is stored: SHA-256 hex. Keys are 192-bit random tokens, so a fast
// hash is enough (a slow KDF protects low-entropy passwords, not these).
std::string HashKeySecret(std::string_view secret);

// A small cache in front of FindKeyBySecret for the request path. Entries live `ttl`, so a key
// revoked from another process (the CLI) stops working within that time.
class KeyCache {
  public:
    KeyCache(Store& store, std::chrono::milliseconds ttl) : store_(store), ttl_(ttl) {}

    // The active (not revoked) key for `secret`, or nullopt.
    Result<std::optional<ApiKey>> Lookup(std::string_view secret);

  private:
    struct Entry {
        std::optional<ApiKey> key;
        std::chrono::steady_clock::time_point expires;
    };
    Store& store_;
    std::chrono::milliseconds ttl_;
    std::mutex mu_;
    std::unordered_map<std::string, Entry> entries_;  // by key hash
};

}  // namespace beacon::store
