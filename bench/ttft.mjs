// Streaming client for bench/run: for SECONDS, CONNS keep-alive connections each send streamed
// chat requests one after another and time the first content token (first SSE data event
// carrying a non-empty delta.content) and the whole stream.
//   node bench/ttft.mjs URL SECONDS CONNS MODEL [API_KEY]
// Prints: BENCH_RESULT requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N max_us=N
//         non2xx=N errors=N ttft_p50_us=N ttft_p99_us=N
// (p50/p90/p99 are of the whole stream; ttft_* of the first token.)
import http from 'node:http';

const [url, secs = '3', conns = '1', model = 'gpt-4o', key = ''] = process.argv.slice(2);
const u = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conns) });
const filler = 'The quick brown fox jumps over the lazy dog. '.repeat(12);
const body = JSON.stringify({
  model, stream: true,
  messages: [
    { role: 'system', content: 'You are a terse assistant used by a load benchmark. Answer in one sentence.' },
    { role: 'user', content: `Summarise this text: ${filler}` },
  ],
  temperature: 0.2, max_tokens: 64, user: 'bench-user-1', session_id: 'bench-session-1',
  trace: { trace_id: 'bench-trace-0001', trace_name: 'bench', span_name: 'gateway', generation_name: 'chat', environment: 'bench' },
});
const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
if (key) headers.authorization = `Bearer ${key}`;

const ttft = [], total = [];
let non2xx = 0, errors = 0;
const deadline = process.hrtime.bigint() + BigInt(Math.round(Number(secs) * 1e9));
const us = (a, b) => Number(b - a) / 1000;

function one() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let first = null, buf = '';
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers, agent }, (res) => {
      if (res.statusCode !== 200) non2xx++;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        if (first !== null) return;
        buf += d;
        // first data event with non-empty content
        for (const m of buf.matchAll(/data: (\{.*\})\n/g)) {
          try {
            const c = JSON.parse(m[1]).choices?.[0]?.delta?.content;
            if (c) { first = process.hrtime.bigint(); buf = ''; break; }
          } catch { /* partial */ }
        }
      });
      res.on('end', () => {
        const t1 = process.hrtime.bigint();
        if (first !== null) ttft.push(us(t0, first)); else errors++;
        total.push(us(t0, t1));
        resolve();
      });
    });
    req.on('error', () => { errors++; resolve(); });
    req.end(body);
  });
}

async function worker() { while (process.hrtime.bigint() < deadline) await one(); }
const start = process.hrtime.bigint();
await Promise.all(Array.from({ length: Number(conns) }, worker));
const dur = us(start, process.hrtime.bigint());
const pct = (a, p) => { if (!a.length) return 0; const s = [...a].sort((x, y) => x - y); return Math.round(s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]); };
console.log(`BENCH_RESULT requests=${total.length} duration_us=${Math.round(dur)} rps=${(total.length / dur * 1e6).toFixed(1)} ` +
  `p50_us=${pct(total, 50)} p90_us=${pct(total, 90)} p99_us=${pct(total, 99)} max_us=${pct(total, 100)} ` +
  `non2xx=${non2xx} errors=${errors} ttft_p50_us=${pct(ttft, 50)} ttft_p99_us=${pct(ttft, 99)}`);
agent.destroy();
