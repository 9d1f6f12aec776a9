// The CLI's management commands (`beacon broadcast ...`, `beacon destinations ...`) call the
// running server's management API, so the CLI, the web page and HTTP clients share one path
// (validation, Test Connection before saving, secrets sealed by the server).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace beacon::cli {

// Adds the `broadcast` and `destinations` subcommands to `app`. The returned function runs
// whichever of them was parsed and gives the exit code, or -1 when none was.
std::function<int()> AddRemoteCommands(CLI::App& app);

}  // namespace beacon::cli
