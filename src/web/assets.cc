#include "web/assets.h"

#include "web/embedded_assets.h"  // generated: kIndexHtml, kAppJs, kStyleCss

namespace beacon::web {

std::optional<Asset> FindAsset(std::string_view path) {
    if (path == "/settings/observability" || path == "/settings/observability/" ||
        path == "/settings" || path == "/settings/") {
        return Asset{"text/html; charset=utf-8", kIndexHtml};
    }
    if (path == "/settings/assets/app.js") return Asset{"text/javascript; charset=utf-8", kAppJs};
    if (path == "/settings/assets/style.css") return Asset{"text/css; charset=utf-8", kStyleCss};
    return std::nullopt;
}

}  // namespace beacon::web
