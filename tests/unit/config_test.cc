#include "config/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

namespace beacon::config {
namespace {

namespace fs = std::filesystem;

// The configuration the issue specifies (and the integration tests use): every documented key.
constexpr const char* kContractToml = R"toml(
data_dir = "/var/lib/beacon"

[server]
listen = "0.0.0.0:9090"
threads = 4
max_body_bytes = 65536
max_header_bytes = 32768
idle_timeout_ms = 30000
shutdown_timeout_ms = 5000
sse_keepalive_ms = 100
default_model = "backup/model"

[log]
level = "debug"
format = "text"

[[providers]]
name = "fake"
type = "openai_compatible"
base_url = "http://127.0.0.1:4010/v1"
api_key_env = "FAKE_UPSTREAM_KEY"
display_name = "FakeAI"
connect_timeout_ms = 1000
first_byte_timeout_ms = 1500
total_timeout_ms = 5000
headers = { "HTTP-Referer" = "https://example.com", "X-Title" = "Beacon" }

[[providers]]
name = "demo"
type = "demo"
chunk_delay_ms = 0

[[models]]
id = "openai/gpt-4o"
provider = "fake"
upstream_model = "gpt-4o"
prompt_price = 0.0000025
completion_price = 0.00001
cached_prompt_price = 0.00000125
context_length = 128000
name = "OpenAI: GPT-4o"
description = "Fast and multimodal."

[[models]]
id = "backup/model"
provider = "demo"
prompt_price = 0
completion_price = 0
)toml";

class ConfigFileTest : public testing::Test {
  protected:
    void SetUp() override {
        std::random_device rd;
        dir_ = fs::temp_directory_path() /
               ("beacon_config_test_" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::string Write(const std::string& text, const std::string& name = "beacon.toml") {
        const fs::path p = dir_ / name;
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }

    // The error message of loading `text`, or "ok".
    std::string LoadError(const std::string& text) {
        auto r = LoadConfigFile(Write(text));
        return r ? "ok" : r.error().message;
    }

    fs::path dir_;
};

TEST_F(ConfigFileTest, ReadsEveryKeyOfTheContract) {
    // Verifies that every documented key of the TOML contract is read into Config.
    auto r = LoadConfigFile(Write(kContractToml));
    ASSERT_TRUE(r) << r.error().message;
    const Config& c = *r;
    EXPECT_EQ(c.data_dir, "/var/lib/beacon");
    EXPECT_EQ(c.server.listen, "0.0.0.0:9090");
    EXPECT_EQ(c.server.threads, 4);
    EXPECT_EQ(c.server.max_body_bytes, 65536u);
    EXPECT_EQ(c.server.max_header_bytes, 32768u);
    EXPECT_EQ(c.server.idle_timeout_ms, 30000);
    EXPECT_EQ(c.server.shutdown_timeout_ms, 5000);
    EXPECT_EQ(c.server.sse_keepalive_ms, 100);
    EXPECT_EQ(c.server.default_model, "backup/model");
    EXPECT_EQ(c.log.level, "debug");
    EXPECT_EQ(c.log.format, "text");

    ASSERT_EQ(c.providers.size(), 2u);
    const ProviderConfig& fake = c.providers[0];
    EXPECT_EQ(fake.name, "fake");
    EXPECT_EQ(fake.type, "openai_compatible");
    EXPECT_EQ(fake.base_url, "http://127.0.0.1:4010/v1");
    EXPECT_EQ(fake.api_key_env, "FAKE_UPSTREAM_KEY");
    EXPECT_EQ(fake.display_name, "FakeAI");
    EXPECT_EQ(fake.connect_timeout_ms, 1000);
    EXPECT_EQ(fake.first_byte_timeout_ms, 1500);
    EXPECT_EQ(fake.total_timeout_ms, 5000);
    EXPECT_EQ(fake.headers, (std::map<std::string, std::string>{
                                {"HTTP-Referer", "https://example.com"}, {"X-Title", "Beacon"}}));
    const ProviderConfig& demo = c.providers[1];
    EXPECT_EQ(demo.display_name, "demo");  // defaults to the name
    EXPECT_EQ(demo.chunk_delay_ms, 0);
    EXPECT_EQ(demo.connect_timeout_ms, 5000);
    EXPECT_EQ(demo.first_byte_timeout_ms, 60000);
    EXPECT_EQ(demo.total_timeout_ms, 600000);

    ASSERT_EQ(c.models.size(), 2u);
    const ModelConfig& gpt = c.models[0];
    EXPECT_EQ(gpt.id, "openai/gpt-4o");
    EXPECT_EQ(gpt.provider, "fake");
    EXPECT_EQ(gpt.upstream_model, "gpt-4o");
    EXPECT_DOUBLE_EQ(gpt.prompt_price, 0.0000025);
    EXPECT_DOUBLE_EQ(gpt.completion_price, 0.00001);
    ASSERT_TRUE(gpt.cached_prompt_price.has_value());
    EXPECT_DOUBLE_EQ(*gpt.cached_prompt_price, 0.00000125);
    EXPECT_EQ(gpt.context_length, 128000);
    EXPECT_EQ(gpt.name, "OpenAI: GPT-4o");
    EXPECT_EQ(gpt.description, "Fast and multimodal.");
    const ModelConfig& backup = c.models[1];
    EXPECT_EQ(backup.upstream_model, "backup/model");  // defaults to the id
    EXPECT_EQ(backup.name, "backup/model");
    EXPECT_DOUBLE_EQ(backup.prompt_price, 0);  // an integer is accepted for a price
    EXPECT_FALSE(backup.cached_prompt_price.has_value());
    EXPECT_EQ(backup.context_length, 128000);

    EXPECT_TRUE(Validate(c)) << Validate(c).error().message;
}

TEST_F(ConfigFileTest, StringAndFileLoadersAgree) {
    // Verifies that LoadConfigString reads the same configuration as LoadConfigFile.
    auto from_file = LoadConfigFile(Write(kContractToml));
    auto from_string = LoadConfigString(kContractToml, "inline.toml");
    ASSERT_TRUE(from_file);
    ASSERT_TRUE(from_string) << from_string.error().message;
    EXPECT_EQ(from_string->server.listen, from_file->server.listen);
    EXPECT_EQ(from_string->providers.size(), from_file->providers.size());
    EXPECT_EQ(from_string->models.size(), from_file->models.size());
    EXPECT_EQ(from_string->models[0].upstream_model, "gpt-4o");
}

TEST_F(ConfigFileTest, EmptyFileGivesDefaults) {
    // Verifies the defaults of an empty file: the demo provider and model, and server defaults.
    auto r = LoadConfigFile(Write(""));
    ASSERT_TRUE(r) << r.error().message;
    const Config& c = *r;
    EXPECT_EQ(c.server.listen, "127.0.0.1:8080");
    EXPECT_EQ(c.server.threads, 0);
    EXPECT_EQ(c.server.max_body_bytes, 16u * 1024 * 1024);
    EXPECT_EQ(c.server.max_header_bytes, 64u * 1024);
    EXPECT_EQ(c.server.idle_timeout_ms, 60000);
    EXPECT_EQ(c.server.shutdown_timeout_ms, 10000);
    EXPECT_EQ(c.server.sse_keepalive_ms, 1000);
    EXPECT_EQ(c.server.default_model, "");
    EXPECT_EQ(c.data_dir, "./data");
    EXPECT_EQ(c.log.level, "info");
    EXPECT_EQ(c.log.format, "json");
    ASSERT_EQ(c.providers.size(), 1u);
    EXPECT_EQ(c.providers[0].name, "demo");
    EXPECT_EQ(c.providers[0].type, "demo");
    EXPECT_EQ(c.providers[0].chunk_delay_ms, 20);
    ASSERT_EQ(c.models.size(), 1u);
    EXPECT_EQ(c.models[0].id, "beacon/demo");
    EXPECT_EQ(c.models[0].provider, "demo");
    EXPECT_TRUE(Validate(c));
}

TEST_F(ConfigFileTest, ServerOnlyKeepsDefaultProviders) {
    // Verifies that a file with only [server] keeps the demo provider and model.
    auto r = LoadConfigFile(Write("[server]\nlisten = \"127.0.0.1:0\"\n"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->server.listen, "127.0.0.1:0");
    ASSERT_EQ(r->models.size(), 1u);
    EXPECT_EQ(r->models[0].id, "beacon/demo");
}

TEST_F(ConfigFileTest, ProvidersWithoutModelsAreNotMixedWithDefaults) {
    // Verifies that configuring providers replaces the defaults, so no model remains and
    // validation says so.
    auto r = LoadConfigFile(Write("[[providers]]\nname = \"d\"\ntype = \"demo\"\n"));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->providers.size(), 1u);
    EXPECT_TRUE(r->models.empty());
    EXPECT_EQ(Validate(*r).error().message, "models: at least one model is needed");
}

TEST_F(ConfigFileTest, WrongTypesNameTheKey) {
    // Verifies that a value of the wrong type gives a message naming the key with its path.
    EXPECT_EQ(LoadError("[server]\nlisten = 8080\n"), "config: server.listen has the wrong type");
    EXPECT_EQ(LoadError("[server]\nthreads = \"4\"\n"),
              "config: server.threads has the wrong type");
    EXPECT_EQ(LoadError("[server]\nmax_body_bytes = \"1MB\"\n"),
              "config: server.max_body_bytes has the wrong type");
    EXPECT_EQ(LoadError("[server]\ndefault_model = true\n"),
              "config: server.default_model has the wrong type");
    EXPECT_EQ(LoadError("[log]\nlevel = 1\n"), "config: log.level has the wrong type");
    EXPECT_EQ(LoadError("data_dir = [\"a\"]\n"), "config: data_dir has the wrong type");
    EXPECT_EQ(LoadError("[[providers]]\nname = \"a\"\n[[providers]]\nname = 2\n"),
              "config: providers[1].name has the wrong type");
    EXPECT_EQ(LoadError("[[providers]]\nname = \"a\"\nconnect_timeout_ms = \"1s\"\n"),
              "config: providers[0].connect_timeout_ms has the wrong type");
    EXPECT_EQ(LoadError("[[providers]]\nname = \"a\"\nheaders = { X = 1 }\n"),
              "config: providers[0].headers values must be strings");
    EXPECT_EQ(LoadError("[[providers]]\nname = \"a\"\nheaders = \"X: 1\"\n"),
              "config: providers[0].headers must be a table of strings");
    EXPECT_EQ(LoadError("[[models]]\nid = \"a\"\nprompt_price = \"0.1\"\n"),
              "config: models[0].prompt_price must be a number");
    EXPECT_EQ(LoadError("[[models]]\nid = \"a\"\ncompletion_price = true\n"),
              "config: models[0].completion_price must be a number");
    EXPECT_EQ(LoadError("[[models]]\nid = \"a\"\ncached_prompt_price = \"x\"\n"),
              "config: models[0].cached_prompt_price must be a number");
    EXPECT_EQ(LoadError("[[models]]\nid = \"a\"\ncontext_length = 1.5\n"),
              "config: models[0].context_length has the wrong type");
    EXPECT_EQ(LoadError("[[models]]\nid = 7\n"), "config: models[0].id has the wrong type");
    // Floats are not integers, also when whole or beyond the int64 range.
    EXPECT_EQ(LoadError("[server]\nthreads = 4.0\n"), "config: server.threads has the wrong type");
    EXPECT_EQ(LoadError("[server]\nthreads = 9223e71\n"),
              "config: server.threads has the wrong type");
    EXPECT_EQ(LoadError("[[models]]\nid = \"a\"\ncontext_length = 1e300\n"),
              "config: models[0].context_length has the wrong type");
}

TEST_F(ConfigFileTest, WrongSectionKindsAreErrors) {
    // Verifies that a section of the wrong kind (e.g. [providers] for [[providers]]) is an
    // error instead of a silent fallback to the demo configuration.
    EXPECT_EQ(LoadError("[providers]\nname = \"a\"\ntype = \"demo\"\n"),
              "config: providers must be an array of tables ([[providers]])");
    EXPECT_EQ(LoadError("[models]\nid = \"a\"\n"),
              "config: models must be an array of tables ([[models]])");
    EXPECT_EQ(LoadError("providers = [1, 2]\n"),
              "config: providers must be an array of tables ([[providers]])");
    EXPECT_EQ(LoadError("models = [\"a\"]\n"),
              "config: models must be an array of tables ([[models]])");
    EXPECT_EQ(LoadError("server = \"0.0.0.0:80\"\n"), "config: server must be a table ([server])");
    EXPECT_EQ(LoadError("log = \"debug\"\n"), "config: log must be a table ([log])");
}

TEST_F(ConfigFileTest, RangesAreChecked) {
    // Verifies the range checks on integers read from the file.
    EXPECT_EQ(LoadError("[server]\nthreads = -1\n"), "config: server.threads out of range");
    EXPECT_EQ(LoadError("[server]\nidle_timeout_ms = 3000000000\n"),
              "config: server.idle_timeout_ms out of range");
    EXPECT_EQ(LoadError("[server]\nmax_body_bytes = 0\n"),
              "config: server.max_body_bytes must be positive");
    EXPECT_EQ(LoadError("[[providers]]\nname = \"a\"\ntotal_timeout_ms = -5\n"),
              "config: providers[0].total_timeout_ms out of range");
    EXPECT_EQ(LoadError("[server]\nthreads = 2147483647\n"), "ok");
}

TEST_F(ConfigFileTest, SyntaxErrorsNameFileAndLine) {
    // Verifies that a TOML syntax error names the file and the line.
    const std::string path = Write("[server]\nlisten = \"a\"\nthreads = = 4\n");
    auto r = LoadConfigFile(path);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message.rfind("config: " + path + ": ", 0), 0u) << r.error().message;
    EXPECT_NE(r.error().message.find("(line 3)"), std::string::npos) << r.error().message;

    auto s = LoadConfigString("a = \n", "inline.toml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().message.rfind("config: inline.toml: ", 0), 0u) << s.error().message;
    EXPECT_NE(s.error().message.find("(line 1)"), std::string::npos) << s.error().message;
}

TEST_F(ConfigFileTest, MissingFileIsAnError) {
    // Verifies that a missing file is an error that names the path.
    const std::string path = (dir_ / "absent.toml").string();
    auto r = LoadConfigFile(path);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(path), std::string::npos) << r.error().message;
}

// --- environment -------------------------------------------------------------------------------

class FakeEnv {
  public:
    explicit FakeEnv(std::map<std::string, std::string> vars) : vars_(std::move(vars)) {}
    std::function<const char*(const char*)> getenv() {
        return [this](const char* name) -> const char* {
            auto it = vars_.find(name);
            return it == vars_.end() ? nullptr : it->second.c_str();
        };
    }

  private:
    std::map<std::string, std::string> vars_;
};

TEST(ApplyEnvironmentTest, OverridesFromVariables) {
    // Verifies that every BEACON_* variable overrides its key.
    Config c = DefaultConfig();
    FakeEnv env({{"BEACON_LISTEN", "0.0.0.0:1234"},
                 {"BEACON_DATA_DIR", "/tmp/beacon-data"},
                 {"BEACON_LOG_LEVEL", "warn"},
                 {"BEACON_LOG_FORMAT", "text"},
                 {"BEACON_DEFAULT_MODEL", "beacon/demo"},
                 {"BEACON_THREADS", "3"},
                 {"BEACON_MAX_BODY_BYTES", "1048576"}});
    ASSERT_TRUE(ApplyEnvironment(c, env.getenv()));
    EXPECT_EQ(c.server.listen, "0.0.0.0:1234");
    EXPECT_EQ(c.data_dir, "/tmp/beacon-data");
    EXPECT_EQ(c.log.level, "warn");
    EXPECT_EQ(c.log.format, "text");
    EXPECT_EQ(c.server.default_model, "beacon/demo");
    EXPECT_EQ(c.server.threads, 3);
    EXPECT_EQ(c.server.max_body_bytes, 1048576u);
}

TEST(ApplyEnvironmentTest, UnsetAndEmptyVariablesChangeNothing) {
    // Verifies that absent or empty variables keep the configured values.
    Config c = DefaultConfig();
    c.server.listen = "127.0.0.1:7000";
    FakeEnv env({{"BEACON_LISTEN", ""}, {"BEACON_THREADS", ""}});
    ASSERT_TRUE(ApplyEnvironment(c, env.getenv()));
    EXPECT_EQ(c.server.listen, "127.0.0.1:7000");
    EXPECT_EQ(c.server.threads, 0);
    EXPECT_EQ(c.data_dir, "./data");
}

TEST(ApplyEnvironmentTest, RejectsMalformedNumbers) {
    // Verifies that numeric variables must be whole, in-range numbers, and the message names the
    // variable and the value.
    struct Case {
        const char* name;
        const char* value;
        const char* message;
    };
    for (const Case& k :
         {Case{"BEACON_THREADS", "many", "BEACON_THREADS: expected an integer >= 0, got \"many\""},
          Case{"BEACON_THREADS", "4x", "BEACON_THREADS: expected an integer >= 0, got \"4x\""},
          Case{"BEACON_THREADS", "-2", "BEACON_THREADS: expected an integer >= 0, got \"-2\""},
          Case{"BEACON_THREADS", "99999999999",
               "BEACON_THREADS: expected an integer >= 0, got \"99999999999\""},
          Case{"BEACON_MAX_BODY_BYTES", "-1",
               "BEACON_MAX_BODY_BYTES: expected a positive integer, got \"-1\""},
          Case{"BEACON_MAX_BODY_BYTES", "1MB",
               "BEACON_MAX_BODY_BYTES: expected a positive integer, got \"1MB\""},
          Case{"BEACON_MAX_BODY_BYTES", "0",
               "BEACON_MAX_BODY_BYTES: expected a positive integer, got \"0\""}}) {
        Config c = DefaultConfig();
        FakeEnv env(std::map<std::string, std::string>{{k.name, k.value}});
        Status s = ApplyEnvironment(c, env.getenv());
        ASSERT_FALSE(s) << k.name << "=" << k.value;
        EXPECT_EQ(s.error().message, k.message);
        EXPECT_EQ(c.server.max_body_bytes, 16u * 1024 * 1024);
    }
}

// --- validation --------------------------------------------------------------------------------

Config ValidConfig() {
    Config c;
    ProviderConfig p;
    p.name = "up";
    p.type = "openai_compatible";
    p.base_url = "https://api.example.com/v1";
    c.providers.push_back(p);
    ProviderConfig d;
    d.name = "demo";
    d.type = "demo";
    c.providers.push_back(d);
    ModelConfig m;
    m.id = "a/b";
    m.provider = "up";
    c.models.push_back(m);
    return c;
}

std::string ValidationError(const Config& c) {
    Status s = Validate(c);
    return s ? "ok" : s.error().message;
}

TEST(ValidateTest, AcceptsValidConfigs) {
    // Verifies that a well-formed configuration and the defaults pass validation.
    EXPECT_EQ(ValidationError(ValidConfig()), "ok");
    EXPECT_EQ(ValidationError(DefaultConfig()), "ok");
    Config c = ValidConfig();
    c.providers[0].base_url = "http://localhost:11434/v1";
    c.server.default_model = "a/b";
    EXPECT_EQ(ValidationError(c), "ok");
}

TEST(ValidateTest, UnknownProviderType) {
    // Verifies that an unknown provider type is rejected, naming the provider and the types.
    Config c = ValidConfig();
    c.providers[0].type = "anthropic-ish";
    EXPECT_EQ(ValidationError(c),
              "providers.up.type: unknown type \"anthropic-ish\" (expected openai_compatible or "
              "demo)");
}

TEST(ValidateTest, ModelReferencingMissingProvider) {
    // Verifies that a model naming an unknown provider is rejected.
    Config c = ValidConfig();
    c.models[0].provider = "nope";
    EXPECT_EQ(ValidationError(c), "models.a/b.provider: no provider named \"nope\"");
}

TEST(ValidateTest, BadBaseUrl) {
    // Verifies that openai_compatible providers need an absolute http(s) base_url.
    for (const char* url : {"", "api.example.com/v1", "ftp://example.com", "/v1", "http//x"}) {
        Config c = ValidConfig();
        c.providers[0].base_url = url;
        EXPECT_EQ(
            ValidationError(c),
            std::string("providers.up.base_url: expected an http(s) URL, got \"") + url + "\"")
            << url;
    }
}

TEST(ValidateTest, DuplicateIds) {
    // Verifies that duplicate provider names and duplicate model ids are rejected.
    Config c = ValidConfig();
    c.providers.push_back(c.providers[0]);
    EXPECT_EQ(ValidationError(c), "providers: duplicate name up");
    Config m = ValidConfig();
    m.models.push_back(m.models[0]);
    EXPECT_EQ(ValidationError(m), "models: duplicate id a/b");
}

TEST(ValidateTest, OtherRules) {
    // Verifies the remaining rules: listen, log format, names, timeouts, prices, default model.
    Config c = ValidConfig();
    c.server.listen = "localhost";
    EXPECT_EQ(ValidationError(c), "listen: expected HOST:PORT, got \"localhost\"");

    c = ValidConfig();
    c.log.format = "xml";
    EXPECT_EQ(ValidationError(c), "log.format: expected \"json\" or \"text\"");

    c = ValidConfig();
    c.providers[1].name = "";
    EXPECT_EQ(ValidationError(c), "providers: every provider needs a name");

    c = ValidConfig();
    c.providers[0].first_byte_timeout_ms = 0;
    EXPECT_EQ(ValidationError(c), "providers.up: timeouts must be positive");

    c = ValidConfig();
    c.models[0].id = "";
    EXPECT_EQ(ValidationError(c), "models: every model needs an id");

    c = ValidConfig();
    c.models[0].cached_prompt_price = -0.1;
    EXPECT_EQ(ValidationError(c), "models.a/b: prices must not be negative");

    c = ValidConfig();
    c.models.clear();
    EXPECT_EQ(ValidationError(c), "models: at least one model is needed");

    c = ValidConfig();
    c.server.default_model = "x/y";
    EXPECT_EQ(ValidationError(c), "server.default_model: no model \"x/y\"");
}

// --- listen ------------------------------------------------------------------------------------

TEST(ParseListenTest, SplitsHostAndPort) {
    // Verifies HOST:PORT splitting, IPv6 brackets and port 0.
    auto a = ParseListen("127.0.0.1:8080");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->first, "127.0.0.1");
    EXPECT_EQ(a->second, 8080);
    auto b = ParseListen("[::1]:443");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->first, "::1");
    EXPECT_EQ(b->second, 443);
    auto c = ParseListen("localhost:0");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->first, "localhost");
    EXPECT_EQ(c->second, 0);
    auto d = ParseListen("0.0.0.0:65535");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->second, 65535);
}

TEST(ParseListenTest, RejectsBadValues) {
    // Verifies the errors for a missing host or port and for bad port numbers.
    EXPECT_EQ(ParseListen("8080").error().message, "listen: expected HOST:PORT, got \"8080\"");
    EXPECT_EQ(ParseListen(":8080").error().message, "listen: expected HOST:PORT, got \":8080\"");
    EXPECT_EQ(ParseListen("").error().message, "listen: expected HOST:PORT, got \"\"");
    for (const char* bad : {"h:", "h:65536", "h:-1", "h:80x", "h:http", "h:99999999999"}) {
        auto r = ParseListen(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().message, std::string("listen: bad port in \"") + bad + "\"");
    }
}

}  // namespace
}  // namespace beacon::config
