// Fuzzes the TOML configuration loader on arbitrary text. Parsing must never throw or crash;
// a loaded configuration must survive validation and the listen address parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto config = beacon::config::LoadConfigString(text, "fuzz.toml");
    if (!config) {
        BEACON_FUZZ_CHECK(config.error().message.rfind("config: ", 0) == 0,
                          "a load error does not start with \"config: \"");
        return 0;
    }
    BEACON_FUZZ_CHECK(!config->models.empty() || !config->providers.empty(),
                      "a loaded configuration has neither providers nor models");
    beacon::Status valid = beacon::config::Validate(*config);
    if (!valid) {
        BEACON_FUZZ_CHECK(!valid.error().message.empty(), "a validation error has no message");
        return 0;
    }
    auto listen = beacon::config::ParseListen(config->server.listen);
    BEACON_FUZZ_CHECK(listen.ok(), "Validate accepted a listen address ParseListen rejects");
    return 0;
}
