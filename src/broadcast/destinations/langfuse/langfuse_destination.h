// The Langfuse destination: OTLP/HTTP JSON (gzip) to {base_url}/api/public/otel/v1/traces with
// Basic auth and `x-langfuse-ingestion-version: 4`, or, for servers older than v3.22, the legacy
// batch API at {base_url}/api/public/ingestion (no gzip; 207 answers per event).
//
// Config keys (config::DestinationConfig): public_key, secret_key (or secret_key_env), base_url
// (default https://us.cloud.langfuse.com), transport ("otlp" | "ingestion"), privacy_mode,
// timeout_ms (10000), gzip (true).
#pragma once

#include <memory>

#include "base/result.h"
#include "broadcast/destination.h"

namespace beacon::broadcast::langfuse {

inline constexpr std::string_view kDefaultBaseUrl = "https://us.cloud.langfuse.com";

Result<std::unique_ptr<Destination>> Create(const config::DestinationConfig& config);

}  // namespace beacon::broadcast::langfuse
