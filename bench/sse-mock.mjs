// Streaming mock upstream for bench/run: POST /v1/chat/completions with "stream": true answers
// with Server-Sent Events: a first content chunk at once, then CHUNKS-1 more content chunks
// CHUNK_MS apart, a usage chunk and [DONE]. Without "stream" it answers one fixed chat.completion.
//   node bench/sse-mock.mjs PORT [CHUNKS=50] [CHUNK_MS=1]
// Listens on 127.0.0.1 only; prints "listening PORT" when ready.
import http from 'node:http';

const port = Number(process.argv[2] || 18407);
const chunks = Number(process.argv[3] || 50);
const chunkMs = Number(process.argv[4] || 1);
const created = 1732752000;

const chunk = (delta, finish) =>
  'data: ' + JSON.stringify({
    id: 'chatcmpl-benchstream', object: 'chat.completion.chunk', created, model: 'gpt-4o-2024-08-06',
    system_fingerprint: 'fp_bench',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  }) + '\n\n';
const usage = 'data: ' + JSON.stringify({
  id: 'chatcmpl-benchstream', object: 'chat.completion.chunk', created, model: 'gpt-4o-2024-08-06',
  choices: [], usage: { prompt_tokens: 212, completion_tokens: chunks, total_tokens: 212 + chunks },
}) + '\n\n';
const full = JSON.stringify({
  id: 'chatcmpl-bench0001', object: 'chat.completion', created, model: 'gpt-4o-2024-08-06',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the streaming mock.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 212, completion_tokens: 8, total_tokens: 220 },
});

const server = http.createServer((req, res) => {
  const parts = [];
  req.on('data', (d) => parts.push(d));
  req.on('end', () => {
    let stream = false;
    try { stream = JSON.parse(Buffer.concat(parts).toString()).stream === true; } catch { /* not JSON */ }
    if (!stream) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(full) });
      res.end(full);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.socket.setNoDelay(true);
    res.write(chunk({ role: 'assistant', content: 'tok0 ' }, null));
    let i = 1;
    const next = () => {
      if (res.destroyed) return;
      if (i < chunks) {
        res.write(chunk({ content: `tok${i} ` }, i === chunks - 1 ? 'stop' : null));
        i++;
        setTimeout(next, chunkMs);
      } else {
        res.end(usage + 'data: [DONE]\n\n');
      }
    };
    setTimeout(next, chunkMs);
  });
});
server.keepAliveTimeout = 75000;
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
