// What one hop between two processes costs on this machine, and how much more after an idle
// gap: a one-byte round trip over a loopback TCP connection to a child process that echoes it,
// back to back and after the gaps a streaming client leaves between requests. A proxy puts two
// such hops (client -> proxy -> upstream, and back) between a client and its first token, so
// this is the floor under any gateway's added time to first token, nginx's included.
//   node bench/wakeup.mjs [ROUNDS]       (default 300 rounds per gap; ~25 s)
// Prints the median round trip per gap, in µs, and each as a ratio to back to back.
import { fork } from 'node:child_process';
import net from 'node:net';

if (process.argv[2] === '--echo') {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
  });
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
} else {
  const rounds = Number(process.argv[2] || 300);
  const child = fork(new URL(import.meta.url).pathname, ['--echo']);
  const port = await new Promise((resolve) => child.once('message', resolve));
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const roundTrip = () => new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    socket.once('data', () => resolve(Number(process.hrtime.bigint() - t0) / 1000));
    socket.write('x');
  });
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const measure = async (gapMs, n) => {
    const times = [];
    for (let i = 0; i < n; i++) {
      if (gapMs) await sleep(gapMs);
      times.push(await roundTrip());
    }
    return median(times);
  };
  await measure(0, 2000);  // warm-up
  const base = await measure(0, rounds * 10);
  console.log(`gap (ms)  round trip p50 (µs)  vs back to back`);
  console.log(`${'0'.padStart(8)}  ${base.toFixed(1).padStart(19)}  ${'1.00x'.padStart(15)}`);
  for (const gap of [1, 10, 60]) {
    const t = await measure(gap, rounds);
    console.log(`${String(gap).padStart(8)}  ${t.toFixed(1).padStart(19)}  ${(t / base).toFixed(2).padStart(14)}x`);
  }
  socket.destroy();
  child.kill();
}
