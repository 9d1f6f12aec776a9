#!/usr/bin/env bash
# Installs what is needed, builds Beacon, and starts it with the embedded defaults: a SQLite
# store in ./data, the offline demo model, and a first API key printed once.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBEACON_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target beacon
cat <<'MSG'

Beacon is starting on http://127.0.0.1:8080 (Ctrl-C stops it). In another terminal:

  curl http://127.0.0.1:8080/api/v1/chat/completions \
    -H "Authorization: Bearer $BEACON_KEY" -H "Content-Type: application/json" \
    -d '{"model":"beacon/demo","messages":[{"role":"user","content":"Hello"}]}'

where BEACON_KEY is the key printed below on first start (or create one with
./build/src/beacon keys create --name me --data-dir ./data).

MSG
exec ./build/src/beacon serve --data-dir ./data --listen "${BEACON_LISTEN:-127.0.0.1:8080}" "$@"
