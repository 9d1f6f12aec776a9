// The Broadcast and spool series of GET /metrics, per destination (its id is the label: names
// can change, ids do not).
#pragma once

#include <string>

#include "broadcast/broadcaster.h"

namespace beacon::admin {

void RenderBroadcastMetrics(const broadcast::Broadcaster& broadcaster, std::string& out);

}  // namespace beacon::admin
