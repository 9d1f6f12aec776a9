#include "config/config.h"

#include <toml++/toml.h>

#include <boost/url/parse.hpp>
#include <charconv>
#include <set>

namespace beacon::config {
namespace {

template <class T>
Status Read(const toml::table& t, std::string_view key, T& out, const std::string& where) {
    const toml::node* node = t.get(key);
    if (!node) return Status::Ok();
    // value_exact, not value: toml++ 3.3 converts a float to int64_t with an unchecked cast
    // (undefined behaviour for `threads = 1e300`), and `threads = 4.0` is a type error anyway.
    if (auto v = node->value_exact<T>()) {
        out = *v;
        return Status::Ok();
    }
    return Error{"config: " + where + std::string(key) + " has the wrong type"};
}

// A key present with another kind of value than expected is an error, so that `[providers]`
// written for `[[providers]]` does not silently fall back to the demo configuration.
template <class T>
Status ExpectKind(const toml::table& t, std::string_view key, const std::string& where,
                  std::string_view what) {
    const toml::node* node = t.get(key);
    if (!node || node->is<T>()) return Status::Ok();
    return Error{"config: " + where + std::string(key) + " must be " + std::string(what)};
}

Status ReadInt(const toml::table& t, std::string_view key, int& out, const std::string& where) {
    int64_t v = out;
    if (auto s = Read(t, key, v, where); !s) return s;
    if (v < 0 || v > INT32_MAX)
        return Error{"config: " + where + std::string(key) + " out of range"};
    out = static_cast<int>(v);
    return Status::Ok();
}

Status ReadProvider(const toml::table& t, ProviderConfig& p, size_t index) {
    const std::string where = "providers[" + std::to_string(index) + "].";
    for (auto [key, target] : {std::pair<std::string_view, std::string*>{"name", &p.name},
                               {"type", &p.type},
                               {"base_url", &p.base_url},
                               {"api_key_env", &p.api_key_env},
                               {"display_name", &p.display_name}}) {
        if (auto s = Read(t, key, *target, where); !s) return s;
    }
    for (auto [key, target] :
         {std::pair<std::string_view, int*>{"connect_timeout_ms", &p.connect_timeout_ms},
          {"first_byte_timeout_ms", &p.first_byte_timeout_ms},
          {"total_timeout_ms", &p.total_timeout_ms},
          {"chunk_delay_ms", &p.chunk_delay_ms}}) {
        if (auto s = ReadInt(t, key, *target, where); !s) return s;
    }
    if (auto s = ExpectKind<toml::table>(t, "headers", where, "a table of strings"); !s) return s;
    if (auto headers = t.get_as<toml::table>("headers")) {
        for (const auto& [k, v] : *headers) {
            auto value = v.value<std::string>();
            if (!value) return Error{"config: " + where + "headers values must be strings"};
            p.headers[std::string(k.str())] = *value;
        }
    }
    if (p.display_name.empty()) p.display_name = p.name;
    return Status::Ok();
}

Status ReadModel(const toml::table& t, ModelConfig& m, size_t index) {
    const std::string where = "models[" + std::to_string(index) + "].";
    for (auto [key, target] : {std::pair<std::string_view, std::string*>{"id", &m.id},
                               {"provider", &m.provider},
                               {"upstream_model", &m.upstream_model},
                               {"name", &m.name},
                               {"description", &m.description}}) {
        if (auto s = Read(t, key, *target, where); !s) return s;
    }
    if (auto s = Read(t, "context_length", m.context_length, where); !s) return s;
    for (auto [key, target] :
         {std::pair<std::string_view, double*>{"prompt_price", &m.prompt_price},
          {"completion_price", &m.completion_price}}) {
        // Accept integers too: `prompt_price = 0` is a natural thing to write.
        if (const toml::node* node = t.get(key)) {
            if (auto v = node->value<double>()) {
                *target = *v;
            } else {
                return Error{"config: " + where + std::string(key) + " must be a number"};
            }
        }
    }
    if (const toml::node* node = t.get("cached_prompt_price")) {
        auto v = node->value<double>();
        if (!v) return Error{"config: " + where + "cached_prompt_price must be a number"};
        m.cached_prompt_price = *v;
    }
    if (m.upstream_model.empty()) m.upstream_model = m.id;
    if (m.name.empty()) m.name = m.id;
    return Status::Ok();
}

Status ReadDestination(const toml::table& t, DestinationConfig& d, size_t index) {
    const std::string where = "broadcast.destinations[" + std::to_string(index) + "].";
    for (auto [key, target] : {std::pair<std::string_view, std::string*>{"name", &d.name},
                               {"type", &d.type},
                               {"public_key", &d.public_key},
                               {"secret_key", &d.secret_key},
                               {"secret_key_env", &d.secret_key_env},
                               {"base_url", &d.base_url},
                               {"transport", &d.transport}}) {
        if (auto s = Read(t, key, *target, where); !s) return s;
    }
    for (auto [key, target] : {std::pair<std::string_view, bool*>{"enabled", &d.enabled},
                               {"privacy_mode", &d.privacy_mode},
                               {"gzip", &d.gzip}}) {
        if (auto s = Read(t, key, *target, where); !s) return s;
    }
    if (auto s = ReadInt(t, "timeout_ms", d.timeout_ms, where); !s) return s;
    if (const toml::node* node = t.get("sampling_rate")) {
        auto v = node->value<double>();
        if (!v) return Error{"config: " + where + "sampling_rate must be a number"};
        d.sampling_rate = *v;
    }
    if (auto keys = t.get_as<toml::array>("api_keys")) {
        for (const auto& k : *keys) {
            auto v = k.value<std::string>();
            if (!v) return Error{"config: " + where + "api_keys must be key names (strings)"};
            d.api_key_names.push_back(*v);
        }
    }
    if (d.name.empty()) d.name = d.type + "-" + std::to_string(index + 1);
    d.id = "cfg-" + d.name;
    return Status::Ok();
}

}  // namespace

Config DefaultConfig() {
    Config c;
    ProviderConfig demo;
    demo.name = "demo";
    demo.type = "demo";
    demo.display_name = "Beacon Demo";
    c.providers.push_back(demo);
    ModelConfig m;
    m.id = "beacon/demo";
    m.provider = "demo";
    m.upstream_model = "demo";
    m.name = "Beacon: Demo (offline)";
    m.description = "An offline, deterministic model that streams a canned answer.";
    m.context_length = 32768;
    m.prompt_price = 0.000001;
    m.completion_price = 0.000002;
    c.models.push_back(m);
    return c;
}

namespace {

Error ParseError(std::string_view source_name, const toml::parse_error& e) {
    return Error{"config: " + std::string(source_name) + ": " + std::string(e.description()) +
                 " (line " + std::to_string(e.source().begin.line) + ")"};
}

Result<Config> FromTable(const toml::table& root) {
    Config c;
    if (auto st = ExpectKind<toml::table>(root, "server", "", "a table ([server])"); !st)
        return st.error();
    if (auto st = ExpectKind<toml::table>(root, "log", "", "a table ([log])"); !st)
        return st.error();
    if (auto st =
            ExpectKind<toml::array>(root, "providers", "", "an array of tables ([[providers]])");
        !st)
        return st.error();
    if (auto st = ExpectKind<toml::array>(root, "models", "", "an array of tables ([[models]])");
        !st)
        return st.error();
    if (auto server = root.get_as<toml::table>("server")) {
        const std::string w = "server.";
        auto& s = c.server;
        if (auto st = Read(*server, "listen", s.listen, w); !st) return st.error();
        if (auto st = Read(*server, "default_model", s.default_model, w); !st) return st.error();
        if (auto st = ReadInt(*server, "threads", s.threads, w); !st) return st.error();
        if (auto st = ReadInt(*server, "idle_timeout_ms", s.idle_timeout_ms, w); !st)
            return st.error();
        if (auto st = ReadInt(*server, "shutdown_timeout_ms", s.shutdown_timeout_ms, w); !st)
            return st.error();
        if (auto st = ReadInt(*server, "sse_keepalive_ms", s.sse_keepalive_ms, w); !st)
            return st.error();
        int64_t body = static_cast<int64_t>(s.max_body_bytes);
        if (auto st = Read(*server, "max_body_bytes", body, w); !st) return st.error();
        if (body <= 0) return Error{"config: server.max_body_bytes must be positive"};
        s.max_body_bytes = static_cast<uint64_t>(body);
        int header = static_cast<int>(s.max_header_bytes);
        if (auto st = ReadInt(*server, "max_header_bytes", header, w); !st) return st.error();
        s.max_header_bytes = static_cast<uint32_t>(header);
    }
    if (auto log = root.get_as<toml::table>("log")) {
        if (auto st = Read(*log, "level", c.log.level, "log."); !st) return st.error();
        if (auto st = Read(*log, "format", c.log.format, "log."); !st) return st.error();
    }
    if (auto st = Read(root, "data_dir", c.data_dir, ""); !st) return st.error();
    if (auto b = root.get_as<toml::table>("broadcast")) {
        const std::string w = "broadcast.";
        auto& bc = c.broadcast;
        if (auto st = Read(*b, "enabled", bc.enabled, w); !st) return st.error();
        for (auto [key, target] :
             {std::pair<std::string_view, int*>{"flush_interval_ms", &bc.flush_interval_ms},
              {"max_batch_records", &bc.max_batch_records},
              {"max_batch_bytes", &bc.max_batch_bytes},
              {"queue_capacity", &bc.queue_capacity},
              {"max_queue_bytes", &bc.max_queue_bytes},
              {"max_attempts", &bc.max_attempts},
              {"retry_base_ms", &bc.retry_base_ms},
              {"retry_max_ms", &bc.retry_max_ms}}) {
            if (auto st = ReadInt(*b, key, *target, w); !st) return st.error();
        }
        if (auto sp = b->get_as<toml::table>("spool")) {
            const std::string ws = "broadcast.spool.";
            auto& spool = bc.spool;
            if (auto st = Read(*sp, "enabled", spool.enabled, ws); !st) return st.error();
            if (auto st = Read(*sp, "path", spool.path, ws); !st) return st.error();
            if (auto st = ReadInt(*sp, "flush_interval_ms", spool.flush_interval_ms, ws); !st)
                return st.error();
            if (auto st = Read(*sp, "max_bytes", spool.max_bytes, ws); !st) return st.error();
            if (auto st = Read(*sp, "sync", spool.sync, ws); !st) return st.error();
        }
        if (auto regions = b->get_as<toml::table>("langfuse_regions")) {
            bc.langfuse_regions.clear();
            for (const auto& [name, url] : *regions) {
                auto v = url.value<std::string>();
                if (!v) return Error{"config: broadcast.langfuse_regions values must be URLs"};
                std::string upper(name.str());
                for (auto& ch : upper)
                    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                bc.langfuse_regions.emplace_back(upper, *v);
            }
        }
        if (auto dests = b->get_as<toml::array>("destinations")) {
            size_t i = 0;
            for (const auto& node : *dests) {
                auto t = node.as_table();
                if (!t)
                    return Error{
                        "config: broadcast.destinations must be [[broadcast.destinations]] tables"};
                DestinationConfig d;
                if (auto st = ReadDestination(*t, d, i++); !st) return st.error();
                bc.destinations.push_back(std::move(d));
            }
        }
    }
    if (auto providers = root.get_as<toml::array>("providers")) {
        size_t i = 0;
        for (const auto& node : *providers) {
            auto t = node.as_table();
            if (!t) return Error{"config: providers must be an array of tables ([[providers]])"};
            ProviderConfig p;
            if (auto st = ReadProvider(*t, p, i++); !st) return st.error();
            c.providers.push_back(std::move(p));
        }
    }
    if (auto models = root.get_as<toml::array>("models")) {
        size_t i = 0;
        for (const auto& node : *models) {
            auto t = node.as_table();
            if (!t) return Error{"config: models must be an array of tables ([[models]])"};
            ModelConfig m;
            if (auto st = ReadModel(*t, m, i++); !st) return st.error();
            c.models.push_back(std::move(m));
        }
    }
    if (c.providers.empty() && c.models.empty()) {
        Config d = DefaultConfig();
        c.providers = std::move(d.providers);
        c.models = std::move(d.models);
    }
    return c;
}

}  // namespace

Result<Config> LoadConfigString(std::string_view text, std::string_view source_name) {
    toml::table root;
    try {
        root = toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        return ParseError(source_name, e);
    }
    return FromTable(root);
}

Result<Config> LoadConfigFile(const std::string& path) {
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        return ParseError(path, e);
    }
    return FromTable(root);
}

Status ApplyEnvironment(Config& c, const std::function<const char*(const char*)>& getenv) {
    auto str = [&](const char* name, std::string& out) {
        if (const char* v = getenv(name); v && *v) out = v;
    };
    str("BEACON_LISTEN", c.server.listen);
    str("BEACON_DATA_DIR", c.data_dir);
    str("BEACON_LOG_LEVEL", c.log.level);
    str("BEACON_LOG_FORMAT", c.log.format);
    str("BEACON_DEFAULT_MODEL", c.server.default_model);
    // The whole value must be a number: std::stoull would read "-1" as 2^64-1 (no body limit)
    // and "12abc" as 12.
    auto whole = [](std::string_view text, auto& out) {
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
        return ec == std::errc() && end == text.data() + text.size();
    };
    if (const char* v = getenv("BEACON_THREADS"); v && *v) {
        int threads = 0;
        if (!whole(v, threads) || threads < 0) {
            return Error{"BEACON_THREADS: expected an integer >= 0, got \"" + std::string(v) +
                         "\""};
        }
        c.server.threads = threads;
    }
    if (const char* v = getenv("BEACON_MAX_BODY_BYTES"); v && *v) {
        uint64_t bytes = 0;
        if (!whole(v, bytes) || bytes == 0) {
            return Error{"BEACON_MAX_BODY_BYTES: expected a positive integer, got \"" +
                         std::string(v) + "\""};
        }
        c.server.max_body_bytes = bytes;
    }
    return Status::Ok();
}

Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        return Error{"listen: expected HOST:PORT, got \"" + listen + "\""};
    }
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    int port = -1;
    try {
        size_t used = 0;
        port = std::stoi(listen.substr(colon + 1), &used);
        if (used != listen.size() - colon - 1) port = -1;
    } catch (const std::exception&) {
        port = -1;
    }
    if (port < 0 || port > 65535) return Error{"listen: bad port in \"" + listen + "\""};
    return std::pair{host, static_cast<uint16_t>(port)};
}

Status Validate(const Config& c) {
    if (auto l = ParseListen(c.server.listen); !l) return l.error();
    if (c.log.format != "json" && c.log.format != "text") {
        return Error{"log.format: expected \"json\" or \"text\""};
    }
    std::set<std::string> providers;
    for (const auto& p : c.providers) {
        if (p.name.empty()) return Error{"providers: every provider needs a name"};
        if (!providers.insert(p.name).second) return Error{"providers: duplicate name " + p.name};
        if (p.type == "openai_compatible") {
            auto url = boost::urls::parse_absolute_uri(p.base_url);
            if (!url || (url->scheme() != "http" && url->scheme() != "https")) {
                return Error{"providers." + p.name + ".base_url: expected an http(s) URL, got \"" +
                             p.base_url + "\""};
            }
        } else if (p.type != "demo") {
            return Error{"providers." + p.name + ".type: unknown type \"" + p.type +
                         "\" (expected openai_compatible or demo)"};
        }
        if (p.connect_timeout_ms <= 0 || p.first_byte_timeout_ms <= 0 || p.total_timeout_ms <= 0) {
            return Error{"providers." + p.name + ": timeouts must be positive"};
        }
    }
    std::set<std::string> models;
    for (const auto& m : c.models) {
        if (m.id.empty()) return Error{"models: every model needs an id"};
        if (!models.insert(m.id).second) return Error{"models: duplicate id " + m.id};
        if (!providers.count(m.provider)) {
            return Error{"models." + m.id + ".provider: no provider named \"" + m.provider + "\""};
        }
        if (m.prompt_price < 0 || m.completion_price < 0 ||
            (m.cached_prompt_price && *m.cached_prompt_price < 0)) {
            return Error{"models." + m.id + ": prices must not be negative"};
        }
    }
    if (c.models.empty()) return Error{"models: at least one model is needed"};
    const auto& bc = c.broadcast;
    if (bc.flush_interval_ms <= 0 || bc.max_batch_records <= 0 || bc.max_batch_bytes <= 0 ||
        bc.queue_capacity <= 0 || bc.max_queue_bytes <= 0 || bc.max_attempts < 0 ||
        bc.retry_base_ms <= 0 || bc.retry_max_ms < bc.retry_base_ms) {
        return Error{"broadcast: intervals, sizes and attempts must be positive"};
    }
    if (bc.spool.flush_interval_ms <= 0 || bc.spool.flush_interval_ms > 60000) {
        return Error{"broadcast.spool.flush_interval_ms: expected 1 to 60000"};
    }
    if (bc.spool.max_bytes < (int64_t{1} << 20)) {
        return Error{"broadcast.spool.max_bytes: expected at least 1048576 (1 MiB)"};
    }
    if (bc.spool.sync != "off" && bc.spool.sync != "normal" && bc.spool.sync != "full") {
        return Error{"broadcast.spool.sync: expected \"off\", \"normal\" or \"full\", got \"" +
                     bc.spool.sync + "\""};
    }
    std::set<std::string> destinations;
    for (const auto& d : bc.destinations) {
        const std::string where = "broadcast.destinations." + d.name;
        if (!destinations.insert(d.name).second) return Error{where + ": duplicate name"};
        if (d.type != "langfuse") {
            return Error{where + ".type: unknown type \"" + d.type + "\" (expected langfuse)"};
        }
        if (!(d.sampling_rate >= 0.0001 && d.sampling_rate <= 1)) {  // NaN fails too
            return Error{where + ".sampling_rate: expected a number from 0.0001 to 1"};
        }
        if (d.public_key.empty()) return Error{where + ".public_key: required"};
        if (d.secret_key.empty() && d.secret_key_env.empty()) {
            return Error{where + ".secret_key: required (or secret_key_env)"};
        }
        if (!d.base_url.empty()) {
            auto url = boost::urls::parse_absolute_uri(d.base_url);
            if (!url || (url->scheme() != "http" && url->scheme() != "https")) {
                return Error{where + ".base_url: expected an http(s) URL, got \"" + d.base_url +
                             "\""};
            }
        }
        if (d.transport != "otlp" && d.transport != "ingestion") {
            return Error{where + ".transport: expected \"otlp\" or \"ingestion\""};
        }
        if (d.timeout_ms <= 0) return Error{where + ".timeout_ms: must be positive"};
    }
    if (!c.server.default_model.empty() && !models.count(c.server.default_model)) {
        return Error{"server.default_model: no model \"" + c.server.default_model + "\""};
    }
    return Status::Ok();
}

}  // namespace beacon::config
