// The offline demo model: deterministic, no network, realistic streaming (one word per chunk
// with a configurable delay) and usage. It lets the README's first command work anywhere.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "providers/provider.h"

namespace beacon::providers::demo {

// The deterministic answer to a request: its words (each chunk is one), and token counts.
struct DemoAnswer {
    std::vector<std::string> pieces;
    std::string finish_reason;  // "stop" or "length" (max_tokens reached)
    int64_t prompt_tokens = 0;
};
DemoAnswer Answer(const api::ChatRequest& request);

class DemoProvider final : public Provider {
  public:
    explicit DemoProvider(const config::ProviderConfig& config);

    const std::string& name() const override { return name_; }
    const std::string& display_name() const override { return display_name_; }
    boost::asio::awaitable<Result<boost::json::object, AttemptError>> Complete(
        const Call& call) override;
    boost::asio::awaitable<Result<bool, AttemptError>> Stream(const Call& call,
                                                              ChunkSink& sink) override;

  private:
    std::string name_;
    std::string display_name_;
    int chunk_delay_ms_;
};

}  // namespace beacon::providers::demo
