// The model catalog: what clients may ask for, which provider serves it, under which upstream
// name, and at what price. Built once from the configuration; read-only afterwards.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/usage.h"
#include "config/config.h"

namespace beacon::providers {

struct ModelEntry {
    std::string id;              // "author/model"
    std::string provider;        // provider name in the config
    std::string upstream_model;  // sent upstream
    std::string name;
    std::string description;
    int64_t context_length = 0;
    double prompt_price = 0;         // USD per prompt token
    double completion_price = 0;     // USD per completion token
    double cached_prompt_price = 0;  // USD per cached prompt token
    int64_t created = 0;             // unix seconds (when the catalog was loaded)
};

using api::Cost;
using api::Usage;

// Cost from the catalog's prices: uncached prompt tokens at the prompt price, cached ones at
// the cached price, completion tokens (reasoning included) at the completion price.
Cost ComputeCost(const ModelEntry& model, const Usage& usage);

class Catalog {
  public:
    explicit Catalog(const std::vector<config::ModelConfig>& models);

    // Exact id first, then the id without a ":variant" suffix (":nitro", ":free"...).
    const ModelEntry* Find(std::string_view id) const;
    const std::vector<ModelEntry>& models() const { return models_; }

  private:
    std::vector<ModelEntry> models_;
    std::unordered_map<std::string, size_t> by_id_;
};

// Price as OpenRouter writes it: a decimal string without exponent ("0.0000025").
std::string PriceString(double usd_per_token);

}  // namespace beacon::providers
