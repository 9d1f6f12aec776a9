#include "gateway/generation_log.h"

namespace beacon::gateway {

void GenerationLog::Add(GenerationInfo info) {
    std::lock_guard lock(mu_);
    if (by_id_.count(info.id)) return;
    order_.push_back(info.id);
    by_id_.emplace(info.id, std::move(info));
    while (order_.size() > capacity_) {
        by_id_.erase(order_.front());
        order_.pop_front();
    }
}

std::optional<GenerationInfo> GenerationLog::Find(const std::string& id) const {
    std::lock_guard lock(mu_);
    if (auto it = by_id_.find(id); it != by_id_.end()) return it->second;
    return std::nullopt;
}

}  // namespace beacon::gateway
