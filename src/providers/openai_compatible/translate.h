// Pure translation between Beacon's request and an OpenAI-compatible upstream (OpenAI,
// OpenRouter, vLLM, llama.cpp server, Ollama...). No I/O, so every rule here is unit-tested.
#pragma once

#include <string>
#include <string_view>

#include "api/chat_request.h"

namespace beacon::providers::openai_compatible {

// The body to send upstream: the client's request minus Beacon's own fields (routing,
// Broadcast and OpenRouter-only options), with `model` set to the upstream name and, when
// streaming, `stream_options.include_usage` so that tokens are always known.
std::string BuildUpstreamBody(const api::ChatRequest& request, std::string_view upstream_model,
                              bool stream);

}  // namespace beacon::providers::openai_compatible
