#include "providers/registry.h"

#include "providers/demo/demo_provider.h"
#include "providers/openai_compatible/openai_provider.h"

namespace beacon::providers {

bool AttemptError::Retryable() const {
    switch (kind) {
        case Kind::kConnect:
        case Kind::kTimeout:
            return true;
        case Kind::kHttp:
        case Kind::kStream:
            return http_status == 408 || http_status == 429 || http_status >= 500;
        case Kind::kProtocol:
            return true;
        case Kind::kCancelled:
            return false;
    }
    return false;
}

Result<std::unique_ptr<Provider>> CreateProvider(const config::ProviderConfig& config) {
    if (config.type == "demo") return std::unique_ptr<Provider>(new demo::DemoProvider(config));
    if (config.type == "openai_compatible") return openai_compatible::Create(config);
    return Error{"providers." + config.name + ": unknown type " + config.type};
}

}  // namespace beacon::providers
