// The settings page's files, embedded in the binary at build time (cmake/embed_assets.cmake),
// so the page works offline and needs no deployment of its own.
#pragma once

#include <optional>
#include <string_view>

namespace beacon::web {

struct Asset {
    std::string_view content_type;
    std::string_view body;
};

// The asset served at `path` (e.g. "/settings/observability", "/settings/assets/app.js").
std::optional<Asset> FindAsset(std::string_view path);

}  // namespace beacon::web
