// Beacon's static configuration: a TOML file, then BEACON_* environment variables, then
// command-line flags, each overriding the one before.
//
// | key                               | default                 | meaning |
// |-----------------------------------|-------------------------|-------------------------------------------|
// | server.listen                     | "127.0.0.1:8080"        | HOST:PORT (port 0 picks a free
// port)      | | server.threads                    | 0 (= cores)             | I/O threads, one
// io_context each          | | server.max_body_bytes             | 16777216                | larger
// bodies get 413                     | | server.max_header_bytes           | 65536 | larger headers
// get 431                    | | server.idle_timeout_ms            | 60000                   |
// keep-alive idle and read timeout          | | server.shutdown_timeout_ms        | 10000 |
// in-flight deadline after SIGTERM          | | server.sse_keepalive_ms           | 1000 | ":
// OPENROUTER PROCESSING" interval        | | server.default_model              | first model | used
// when a request names no model        | | data_dir                          | "./data" | SQLite
// store, key file, spool             | | log.level / log.format            | "info" / "json" |
// trace..critical / json or text            | | [[providers]] name,type           | - | type:
// openai_compatible or demo           | |   base_url, api_key_env           | - | upstream, env var
// holding its key         | |   display_name                    | name                    |
// reported as `provider` to clients         | |   connect/first_byte/total_timeout_ms |
// 5000/60000/600000   | upstream timeouts                         | |   chunk_delay_ms (demo) | 20
// | delay between streamed demo chunks        | |   headers                         | {} | extra
// headers sent upstream               | | [[models]] id, provider           | - | "author/model"
// clients ask for            | |   upstream_model                  | id                      | the
// name sent upstream                    | |   prompt_price, completion_price  | 0 | USD per token |
// |   cached_prompt_price             | prompt_price            | USD per cached prompt token | |
// context_length, name, description | 128000, id, ""        | for GET /api/v1/models |
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace beacon::config {

struct ServerConfig {
    std::string listen = "127.0.0.1:8080";
    int threads = 0;
    uint64_t max_body_bytes = 16 * 1024 * 1024;
    uint32_t max_header_bytes = 64 * 1024;
    int idle_timeout_ms = 60000;
    int shutdown_timeout_ms = 10000;
    int sse_keepalive_ms = 1000;
    std::string default_model;
};

struct LogConfig {
    std::string level = "info";
    std::string format = "json";
};

struct ProviderConfig {
    std::string name;
    std::string type;
    std::string base_url;
    std::string api_key_env;
    std::string display_name;
    int connect_timeout_ms = 5000;
    int first_byte_timeout_ms = 60000;
    int total_timeout_ms = 600000;
    int chunk_delay_ms = 20;
    std::map<std::string, std::string> headers;
};

struct ModelConfig {
    std::string id;
    std::string provider;
    std::string upstream_model;
    std::string name;
    std::string description;
    int64_t context_length = 128000;
    double prompt_price = 0;
    double completion_price = 0;
    std::optional<double> cached_prompt_price;
};

// One Broadcast destination. Common keys first, then the type's own.
struct DestinationConfig {
    std::string id;            // stable id (config destinations: "cfg-<name>")
    std::string workspace_id;  // empty: every workspace (destinations from the config file)
    std::string name;
    std::string type;  // "langfuse"
    bool enabled = true;
    bool privacy_mode = false;
    double sampling_rate = 1.0;              // 0.0001..1, deterministic by session
    std::vector<std::string> api_key_names;  // empty: every key's traffic
    int timeout_ms = 10000;
    bool gzip = true;
    // langfuse
    std::string public_key;
    std::string secret_key;
    std::string secret_key_env;
    std::string base_url;  // default https://us.cloud.langfuse.com
    std::string transport = "otlp";
};

// Broadcast: the pipeline and the destinations declared in the file (they apply to every
// workspace).
// clang-format off
// | key                                    | default | meaning                                      |
// |----------------------------------------|---------|----------------------------------------------|
// | broadcast.enabled                      | false   | master switch for config-file destinations   |
// | broadcast.flush_interval_ms            | 1000    | a batch waits at most this long              |
// | broadcast.max_batch_records            | 100     | records per export request                   |
// | broadcast.max_batch_bytes              | 2500000 | estimated request size bound (< 3 MB)        |
// | broadcast.queue_capacity               | 10000   | records waiting per destination              |
// | broadcast.max_queue_bytes              | 32 MiB  | estimated bytes held in memory per destination|
// | broadcast.max_attempts                 | 0       | tries per batch before it is dropped; 0: no  |
// |                                        |         | limit (retry while the spool holds it)       |
// | broadcast.retry_base_ms / retry_max_ms | 500 / 30000 | exponential backoff with jitter          |
// | [broadcast.langfuse_regions]           | 4 clouds | regions probed on a 401 (tests: fakes)      |
// | broadcast.spool.enabled                | true    | records go through the on-disk spool         |
// | broadcast.spool.path                   | "<data_dir>/spool.db" | SQLite (WAL) file              |
// | broadcast.spool.flush_interval_ms      | 50      | a record undelivered this long is stored     |
// | broadcast.spool.max_bytes              | 1 GiB   | past it the oldest records are evicted       |
// | broadcast.spool.sync                   | "normal" | "normal": survives a crash of Beacon; "full":|
// |                                        |         | of the machine too (slower); "off"           |
// | [[broadcast.destinations]]             | -       | see DestinationConfig                        |
// The queue bounds apply to records waiting for the spool writer and to those held in memory per
// destination; beyond them new records are dropped and counted (without a spool) or read back
// from the spool later. Credentials refused (401/403) keep their records and are probed every
// 30 s.
// clang-format on
struct SpoolConfig {
    bool enabled = true;
    std::string path;  // empty: <data_dir>/spool.db
    int flush_interval_ms = 50;
    int64_t max_bytes = int64_t{1} << 30;
    std::string sync = "normal";  // off | normal | full
};

struct BroadcastConfig {
    bool enabled = false;
    int flush_interval_ms = 1000;
    int max_batch_records = 100;
    int max_batch_bytes = 2500000;
    int queue_capacity = 10000;
    int max_queue_bytes = 32 * 1024 * 1024;  // with a spool, memory is only a cache of it
    int max_attempts = 0;
    int retry_base_ms = 500;
    int retry_max_ms = 30000;
    SpoolConfig spool;
    std::vector<DestinationConfig> destinations;
    // Langfuse cloud regions probed when Test Connection gets a 401 (name -> base URL); tests
    // point them at fakes with [broadcast.langfuse_regions].
    std::vector<std::pair<std::string, std::string>> langfuse_regions = {
        {"US", "https://us.cloud.langfuse.com"},
        {"EU", "https://cloud.langfuse.com"},
        {"JP", "https://jp.cloud.langfuse.com"},
        {"HIPAA", "https://hipaa.cloud.langfuse.com"}};
};

struct Config {
    ServerConfig server;
    BroadcastConfig broadcast;
    LogConfig log;
    std::string data_dir = "./data";
    std::vector<ProviderConfig> providers;
    std::vector<ModelConfig> models;
};

// The built-in configuration: the offline demo provider and its models.
Config DefaultConfig();

// Reads a TOML file. Providers and models absent from the file fall back to the defaults.
Result<Config> LoadConfigFile(const std::string& path);

// The same from TOML text; `source_name` (a path or "<stdin>") only appears in messages.
Result<Config> LoadConfigString(std::string_view text, std::string_view source_name);

// Applies BEACON_* variables read through `getenv` (injectable in tests).
Status ApplyEnvironment(Config& config, const std::function<const char*(const char*)>& getenv);

// Checks cross-references and ranges; the message says what to fix.
Status Validate(const Config& config);

// Splits "HOST:PORT".
Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen);

}  // namespace beacon::config
