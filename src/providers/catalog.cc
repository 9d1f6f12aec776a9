#include "providers/catalog.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

namespace beacon::providers {

Cost ComputeCost(const ModelEntry& model, const Usage& usage) {
    Cost c;
    // Providers' numbers are not trusted to be consistent: cached is within [0, prompt].
    const int64_t cached =
        std::clamp<int64_t>(usage.cached_tokens, 0, std::max<int64_t>(0, usage.prompt_tokens));
    c.prompt = static_cast<double>(usage.prompt_tokens - cached) * model.prompt_price +
               static_cast<double>(cached) * model.cached_prompt_price;
    c.completion = static_cast<double>(usage.completion_tokens) * model.completion_price;
    c.total = c.prompt + c.completion;
    return c;
}

Catalog::Catalog(const std::vector<config::ModelConfig>& models) {
    const auto now = static_cast<int64_t>(std::time(nullptr));
    for (const auto& m : models) {
        ModelEntry e;
        e.id = m.id;
        e.provider = m.provider;
        e.upstream_model = m.upstream_model.empty() ? m.id : m.upstream_model;
        e.name = m.name.empty() ? m.id : m.name;
        e.description = m.description;
        e.context_length = m.context_length;
        e.prompt_price = m.prompt_price;
        e.completion_price = m.completion_price;
        e.cached_prompt_price = m.cached_prompt_price.value_or(m.prompt_price);
        e.created = now;
        by_id_[e.id] = models_.size();
        models_.push_back(std::move(e));
    }
}

const ModelEntry* Catalog::Find(std::string_view id) const {
    if (auto it = by_id_.find(std::string(id)); it != by_id_.end()) return &models_[it->second];
    if (auto colon = id.rfind(':'); colon != std::string_view::npos) {
        if (auto it = by_id_.find(std::string(id.substr(0, colon))); it != by_id_.end()) {
            return &models_[it->second];
        }
    }
    return nullptr;
}

std::string PriceString(double usd_per_token) {
    std::string s = fmt::format("{:.12f}", usd_per_token);
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s.empty() ? "0" : s;
}

}  // namespace beacon::providers
