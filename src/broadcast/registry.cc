#include "broadcast/registry.h"

#include "broadcast/destinations/langfuse/langfuse_destination.h"

namespace beacon::broadcast {

Result<std::unique_ptr<Destination>> CreateDestination(const config::DestinationConfig& config) {
    if (config.type == "langfuse") return langfuse::Create(config);
    return Error{"broadcast.destinations." + config.name + ": unknown type \"" + config.type +
                 "\""};
}

}  // namespace beacon::broadcast
