// Verifies the fake upstream itself, with plain fetch, so that a failing gateway test can be
// trusted to point at Beacon and not at its fake.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import net from 'node:net';

import { startFakeUpstream, chatCompletion, DEFAULT_CONTENT } from './fake_upstream.mjs';
import { collectSse, readSse, withTimeout } from '../integration/harness.mjs';

const HELLO = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] };

function post(fake, body, init = {}) {
    return fetch(`${fake.url}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer up-key' },
        body: JSON.stringify(body),
        ...init,
    });
}

function dataJson(events) {
    return events.filter((e) => e.json !== undefined).map((e) => e.json);
}

describe('fake upstream', { timeout: 20_000 }, () => {
    let fake;
    before(async () => {
        fake = await startFakeUpstream();
    });
    after(async () => {
        await fake.close();
    });
    beforeEach(() => fake.reset());

    test('answers a default non-stream completion and records the request', async () => {
        const res = await post(fake, { ...HELLO, temperature: 0.5 });
        assert.equal(res.status, 200);
        const body = await res.json();
        assert.equal(body.object, 'chat.completion');
        assert.match(body.id, /^chatcmpl-[A-Za-z0-9]{29}$/);
        assert.equal(body.model, 'gpt-4o');
        assert.equal(body.choices[0].message.content, DEFAULT_CONTENT);
        assert.equal(body.choices[0].finish_reason, 'stop');
        assert.equal(body.usage.prompt_tokens, 12);
        assert.equal(body.usage.completion_tokens, 5);
        assert.equal(body.usage.total_tokens, 17);

        const [req] = await fake.waitForRequests(1);
        assert.equal(req.method, 'POST');
        assert.equal(req.path, '/v1/chat/completions');
        assert.equal(req.headers.authorization, 'Bearer up-key');
        assert.deepEqual(req.body, { ...HELLO, temperature: 0.5 });
    });

    test('serves queued scripts in order, then the default', async () => {
        fake.enqueue({ status: 503, json: { error: { message: 'overloaded' } }, headers: { 'retry-after': '2' } });
        fake.enqueue({ json: chatCompletion({ content: 'second', finish_reason: 'end_turn' }) });

        const first = await post(fake, HELLO);
        assert.equal(first.status, 503);
        assert.equal(first.headers.get('retry-after'), '2');
        assert.deepEqual(await first.json(), { error: { message: 'overloaded' } });

        const second = await (await post(fake, HELLO)).json();
        assert.equal(second.choices[0].message.content, 'second');
        assert.equal(second.choices[0].finish_reason, 'end_turn');

        const third = await (await post(fake, HELLO)).json();
        assert.equal(third.choices[0].message.content, DEFAULT_CONTENT);
        assert.equal(fake.pending, 0);
    });

    test('sends a raw text error body byte for byte', async () => {
        fake.enqueue({ status: 500, text: 'upstream exploded <html>' });
        const res = await post(fake, HELLO);
        assert.equal(res.status, 500);
        assert.equal(await res.text(), 'upstream exploded <html>');
    });

    test('streams OpenAI-shaped chunks with a usage chunk when asked', async () => {
        const res = await post(fake, { ...HELLO, model: 'some-upstream', stream: true, stream_options: { include_usage: true } });
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type'), /^text\/event-stream/);
        const events = await collectSse(res.body);

        assert.equal(events.at(-1).data, '[DONE]');
        const chunks = dataJson(events);
        assert.equal(chunks.length, 4, 'three content chunks and one usage chunk');
        const ids = new Set(chunks.map((c) => c.id));
        assert.equal(ids.size, 1, 'one id for the whole stream');
        for (const c of chunks) {
            assert.equal(c.object, 'chat.completion.chunk');
            assert.equal(c.model, 'some-upstream');
            assert.equal(typeof c.created, 'number');
        }
        assert.equal(chunks[0].choices[0].delta.role, 'assistant');
        assert.equal(chunks.slice(0, 3).map((c) => c.choices[0].delta.content).join(''), DEFAULT_CONTENT);
        assert.equal(chunks[1].choices[0].finish_reason, null);
        assert.equal(chunks[2].choices[0].finish_reason, 'stop');
        assert.deepEqual(chunks[3].choices, []);
        assert.equal(chunks[3].usage.total_tokens, 17);
    });

    test('omits usage when the request did not ask for it, and can put it on the last chunk', async () => {
        const plain = dataJson(await collectSse((await post(fake, { ...HELLO, stream: true })).body));
        assert.equal(plain.length, 3);
        assert.ok(plain.every((c) => c.usage === undefined));

        const usage = { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 };
        fake.enqueue({ stream: { chunks: [{ content: 'a' }, { content: 'b', finish_reason: 'stop' }], usage, usageInLastChunk: true } });
        const inLast = dataJson(await collectSse((await post(fake, { ...HELLO, stream: true, stream_options: { include_usage: true } })).body));
        assert.equal(inLast.length, 2);
        assert.equal(inLast[0].usage, undefined);
        assert.deepEqual(inLast[1].usage, usage);
        assert.equal(inLast[1].choices[0].delta.content, 'b');
    });

    test('failAfter cuts the connection after N chunks, without usage or [DONE]', async () => {
        fake.enqueue({ stream: { chunks: [{ content: 'one' }, { content: 'two' }, { content: 'three' }], failAfter: 2 } });
        const res = await post(fake, { ...HELLO, stream: true, stream_options: { include_usage: true } });
        assert.equal(res.status, 200);
        const seen = [];
        await assert.rejects(async () => {
            for await (const ev of readSse(res.body)) seen.push(ev);
        }, 'the body must end with a transport error, not a clean end');
        assert.deepEqual(seen.map((e) => e.json?.choices[0].delta.content), ['one', 'two']);
        assert.equal(fake.aborts, 0, 'a socket the fake closed itself is not a client abort');
    });

    test('destroy closes the socket without an answer', async () => {
        fake.enqueue({ destroy: true });
        await assert.rejects(post(fake, HELLO));
        assert.equal(fake.aborts, 0);
    });

    // A raw keep-alive connection: sends one chat request and collects every byte that comes
    // back until `done(text)` says enough.
    async function rawExchange(done) {
        const { port } = new URL(fake.url);
        const socket = net.connect(Number(port), '127.0.0.1');
        await once(socket, 'connect');
        const body = JSON.stringify(HELLO);
        socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        let text = '';
        await withTimeout(new Promise((resolve) => {
            socket.on('data', (d) => {
                text += d.toString('latin1');
                if (done(text)) resolve();
            });
        }), 5000, 'the answer');
        return { socket, text };
    }

    test('trailing sends bytes past the announced end of a whole answer', async () => {
        fake.enqueue({ trailing: 'stray\r\n' });
        const { socket, text } = await rawExchange((t) => t.endsWith('stray\r\n'));
        socket.destroy();
        const [head, rest] = text.split('\r\n\r\n');
        const length = Number(/content-length: (\d+)/i.exec(head)[1]);
        assert.equal(rest.length, length + 'stray\r\n'.length, 'the extra bytes are not counted');
        assert.equal(JSON.parse(rest.slice(0, length)).object, 'chat.completion');
    });

    test('closeIdleConnections closes a kept-alive connection and resolves once it is closed', async () => {
        const { socket } = await rawExchange((t) => {
            const [head, rest = ''] = t.split('\r\n\r\n');
            const m = /content-length: (\d+)/i.exec(head);
            return m !== null && rest.length >= Number(m[1]);
        });
        const ended = once(socket, 'end');
        await fake.closeIdleConnections();
        await withTimeout(ended, 5000, 'the end of the connection');
        socket.destroy();
    });

    test('delayMs holds back the response head', async () => {
        fake.enqueue({ delayMs: 300 });
        const started = performance.now();
        const res = await post(fake, { ...HELLO, stream: true });
        const elapsed = performance.now() - started;
        assert.ok(elapsed >= 290, `head arrived after ${elapsed} ms`);
        await res.body.cancel();
    });

    test('a hang is observed as an abort when the client gives up', async () => {
        fake.enqueue({ hang: true });
        const controller = new AbortController();
        const pending = post(fake, HELLO, { signal: controller.signal });
        await fake.waitForRequests(1);
        assert.equal(fake.aborts, 0);
        controller.abort();
        await assert.rejects(pending, { name: 'AbortError' });
        const [aborted] = await withTimeout(fake.waitForAbort(), 3000, 'abort');
        assert.equal(fake.aborts, 1);
        assert.equal(aborted.aborted, true);
        assert.deepEqual(aborted.body, HELLO);
    });

    test('a client leaving mid-stream is observed as an abort', async () => {
        fake.enqueue({ stream: { chunks: Array.from({ length: 50 }, (_, i) => ({ content: `c${i}` })), chunkDelayMs: 200 } });
        const controller = new AbortController();
        const res = await post(fake, { ...HELLO, stream: true }, { signal: controller.signal });
        const it = readSse(res.body);
        const first = await it.next();
        assert.equal(first.value.json.choices[0].delta.content, 'c0');
        controller.abort();
        await assert.rejects(it.next());
        await withTimeout(fake.waitForAbort(), 3000, 'abort');
        assert.equal(fake.aborts, 1);
    });

    test('reset ends a pending hang without counting an abort', async () => {
        fake.enqueue({ hang: true });
        const pending = post(fake, HELLO).catch((err) => err);
        await fake.waitForRequests(1);
        fake.reset();
        assert.ok((await pending) instanceof Error, 'the hung request fails once reset ends it');
        assert.equal(fake.aborts, 0);
        assert.equal(fake.requests.length, 0);
    });

    test('waitForRequests rejects with a clear message after its timeout', async () => {
        await assert.rejects(fake.waitForRequests(1, { timeoutMs: 50 }), /timed out after 50 ms waiting for 1 request/);
    });

    test('standalone mode prints its address and serves the default', async () => {
        const script = fileURLToPath(new URL('./fake_upstream.mjs', import.meta.url));
        const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
        try {
            child.stdout.setEncoding('utf8');
            let out = '';
            let m;
            for await (const text of child.stdout) {
                out += text;
                m = /listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
                if (m) break;
            }
            assert.ok(m, `unexpected output: ${out}`);
            const res = await fetch(`${m[1]}/v1/chat/completions`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify(HELLO),
            });
            assert.equal((await res.json()).choices[0].message.content, DEFAULT_CONTENT);
        } finally {
            child.kill('SIGTERM');
            const [code] = await once(child, 'exit');
            assert.equal(code, 0);
        }
    });
});
