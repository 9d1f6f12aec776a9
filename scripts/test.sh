#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test twice: in an optimised build and in an
# AddressSanitizer + UndefinedBehaviorSanitizer build; then the Broadcast pipeline tests (threads:
# request path, spool writer, exporters) in a ThreadSanitizer build. Exits non-zero on the first
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

./scripts/setup.sh

echo "== format check"
./scripts/format.sh --check

echo "== build (RelWithDebInfo) and test"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j1

echo "== build (ASan + UBSan) and test"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBEACON_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
# The fault tests' outages last 60 s in the pass above; 10 s is enough to exercise the same paths
# under the sanitizers, whose quarantine and shadow memory need a larger RSS bound.
BEACON_FAULT_OUTAGE_MS=10000 BEACON_FAULT_RSS_LIMIT_MIB=1024 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j1

echo "== build (ThreadSanitizer) and run the Broadcast pipeline tests"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBEACON_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target beacon_pipeline_tests
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ./build-tsan/tests/unit/beacon_pipeline_tests
