// The `beacon` command: serve, keys. Each subcommand exits non-zero with a one-line reason on
// error; `keys create` prints the new key alone on the last line of standard output.
#pragma once

namespace beacon::cli {

int Main(int argc, char** argv);

}  // namespace beacon::cli
