#!/usr/bin/env bash
# clang-format over our C++ sources. `--check` fails (and lists the files) when any would change.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.cc' '*.h' | grep -v '^build')
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    if ! clang-format --style=file "$f" | cmp -s - "$f"; then bad+=("$f"); fi
  done
  if [ "${#bad[@]}" -gt 0 ]; then
    printf 'clang-format would change: %s\n' "${bad[@]}" >&2
    exit 1
  fi
else
  clang-format --style=file -i "${files[@]}"
fi
