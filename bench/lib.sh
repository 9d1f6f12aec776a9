# Shared by bench/callgrind, bench/ab and bench/allocs (sourced, not run): the mock upstream and
# one Beacon started from the configs of an earlier bench/run, and the wrk load they put on it.
# The caller sets RUN (the run/ directory), MODE (on|off), CONNS and TOOL (its name, for messages)
# before calling these.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
PIDS=()
bench_cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap bench_cleanup EXIT

bench_require() {  # TOOLS...
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || { echo "$TOOL: $t not found" >&2; exit 1; }
  done
  [ -f "$RUN/mock.conf" ] && [ -f "$RUN/beacon_$MODE/beacon.toml" ] ||
    { echo "$TOOL: $RUN is not a bench/run run/ directory" >&2; exit 1; }
}

bench_start_mock() {  # DIR: the mock upstream and fake Langfuse sink, logs in DIR
  nginx -e "$1/mock.error.log" -p "$RUN" -c "$RUN/mock.conf" >"$1/mock.out" 2>&1 &
  PIDS+=($!)
}

# bench_start_beacon DIR BINARY [PREFIX...]: a data directory and an API key in DIR, then Beacon
# serving (run through PREFIX, e.g. valgrind or env, which must exec it) until it listens. Sets
# KEY, PORT and BEACON_PID.
bench_start_beacon() {
  local dir="$1" bin="$2"
  shift 2
  mkdir -p "$dir/data"
  KEY="$("$bin" keys create --name bench --data-dir "$dir/data" 2>"$dir/keys.err" | tail -n 1)"
  PORT=$(( 20000 + RANDOM % 20000 ))
  "$@" "$bin" serve --config "$RUN/beacon_$MODE/beacon.toml" --data-dir "$dir/data" \
    --listen "127.0.0.1:$PORT" --threads 1 >"$dir/beacon.out" 2>"$dir/beacon.err" &
  BEACON_PID=$!
  PIDS+=("$BEACON_PID")
  for _ in $(seq 1 600); do grep -q listening "$dir/beacon.out" 2>/dev/null && break; sleep 0.1; done
  grep -q listening "$dir/beacon.out" || { echo "$TOOL: $bin did not start" >&2; cat "$dir/beacon.err" >&2; exit 1; }
}

bench_load() {  # SECONDS: wrk with bench/chat.lua against the Beacon started last
  BENCH_PATH=/api/v1/chat/completions BENCH_MODEL=openai/gpt-4o BENCH_KEY="$KEY" \
    wrk -t1 -c"$CONNS" -d"$1"s -s "$BENCH_DIR/chat.lua" "http://127.0.0.1:$PORT"
}

bench_requests() {  # WRK_OUTPUT: the requests it completed; exits when none did
  local n
  n="$(sed -n 's/.*BENCH_RESULT requests=\([0-9]*\).*/\1/p' "$1")"
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "$TOOL: no requests completed" >&2; exit 1; }
  echo "$n"
}
