// The openai_compatible provider: POST {base_url}/chat/completions with a bearer key read from
// the environment variable named in the config.
#pragma once

#include <memory>

#include "base/result.h"
#include "config/config.h"
#include "providers/provider.h"

namespace beacon::providers::openai_compatible {

Result<std::unique_ptr<Provider>> Create(const config::ProviderConfig& config);

}  // namespace beacon::providers::openai_compatible
