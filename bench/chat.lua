-- wrk script: POST a ~1 KiB non-streaming chat request with a `trace` object.
-- Environment (set by bench/run):
--   BENCH_PATH    request path (default /v1/chat/completions)
--   BENCH_MODEL   model id in the body (default openai/gpt-4o)
--   BENCH_KEY     API key, sent as Authorization: Bearer <key> (optional)
--   BENCH_PORTKEY_HOST  if set, adds x-portkey-provider: openai and x-portkey-custom-host: <value>
-- At the end it prints one machine-readable line:
--   BENCH_RESULT requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N max_us=N non2xx=N errors=N

local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local model = os.getenv("BENCH_MODEL") or "openai/gpt-4o"
local key = os.getenv("BENCH_KEY")
local auth = (key and key ~= "") and ("Bearer " .. key) or nil
local portkey_host = os.getenv("BENCH_PORTKEY_HOST")

local filler = string.rep("The quick brown fox jumps over the lazy dog. ", 12)
local body = '{"model":"' .. model .. '",' ..
  '"messages":[' ..
    '{"role":"system","content":"You are a terse assistant used by a load benchmark. Answer in one sentence."},' ..
    '{"role":"user","content":"Summarise this text: ' .. filler .. '"}' ..
  '],' ..
  '"temperature":0.2,"max_tokens":64,' ..
  '"user":"bench-user-1","session_id":"bench-session-1",' ..
  '"trace":{"trace_id":"bench-trace-0001","trace_name":"bench","span_name":"gateway",' ..
    '"generation_name":"chat","environment":"bench","feature":"load-test","build":"smoke"}}'

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
if portkey_host and portkey_host ~= "" then
  wrk.headers["x-portkey-provider"] = "openai"
  wrk.headers["x-portkey-custom-host"] = portkey_host
  if not auth or auth == "" then wrk.headers["Authorization"] = "Bearer sk-bench" end
end

request = function()
  return wrk.format(nil, path)
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local non2xx = summary.errors.status or 0
  local errs = (summary.errors.connect or 0) + (summary.errors.read or 0) +
               (summary.errors.write or 0) + (summary.errors.timeout or 0)
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d errors=%d body_bytes=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    non2xx, errs, #body))
end
