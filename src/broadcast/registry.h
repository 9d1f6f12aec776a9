// Destination types by name.
#pragma once

#include <memory>

#include "base/result.h"
#include "broadcast/destination.h"

namespace beacon::broadcast {

Result<std::unique_ptr<Destination>> CreateDestination(const config::DestinationConfig& config);

}  // namespace beacon::broadcast
