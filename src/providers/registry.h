// Provider types by name: the one place that knows every adapter.
#pragma once

#include <memory>

#include "base/result.h"
#include "config/config.h"
#include "providers/provider.h"

namespace beacon::providers {

Result<std::unique_ptr<Provider>> CreateProvider(const config::ProviderConfig& config);

}  // namespace beacon::providers
