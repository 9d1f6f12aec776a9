// A scriptable fake of an OpenAI-compatible provider, for tests that run the real Beacon binary.
//
// Tests queue "scripts" that say how the next POST /v1/chat/completions must be answered (a
// status, a body, a slow or broken SSE stream, a hang, a dropped connection) and then inspect what
// Beacon actually sent upstream. It also counts upstream connections that the *client* (Beacon)
// closed before the fake finished answering: that is how a test proves Beacon cancels the upstream
// call when its own caller goes away.
//
// Script fields (all optional; an empty script answers like the default):
//   status      HTTP status, default 200. >= 400 answers a JSON error even for stream requests,
//               as real providers do before the first token.
//   json        body object for a non-stream answer (or the error body when status >= 400).
//   text        raw body text instead of `json` (to test how Beacon relays non-JSON errors).
//   headers     extra response headers, e.g. {'retry-after': '1'}.
//   delayMs     wait this long before sending the response head.
//   hang        true: never answer; the connection stays open until the client closes it.
//   destroy     true: close the socket without answering.
//   trailing    text sent after a whole (non-stream) answer's body, in the same write but not
//               counted in its content-length: bytes past the end of the message, as a broken
//               server sends them.
//   stream      for stream requests: {
//                 chunks: [{content?, reasoning?, tool_calls?, finish_reason?, raw?}],
//                 chunkDelayMs   pause between two writes after the first chunk,
//                 usage          {prompt_tokens, completion_tokens, total_tokens, ...details},
//                 failAfter      destroy the socket after this many chunks (no usage, no [DONE]),
//                 usageInLastChunk  put usage on the last chunk instead of a separate one,
//                 sendUsage      force usage on/off; by default it follows the request's
//                                stream_options.include_usage, like OpenAI.
//                 doneWithEnd    send [DONE] and the end of the body in one write.
//               }
//               `raw` in a chunk is written verbatim as the data payload (for malformed input).
//
// Whether an answer is SSE or JSON follows the request's `stream` flag, not the script, so one
// script can serve both kinds of request.
//
// Runnable on its own for manual poking:  node tests/fakes/fake_upstream.mjs [--port N]

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { listenLoopback } from './listen.mjs';

/** The answer of the default script, shared by the stream and non-stream forms. */
export const DEFAULT_CONTENT = 'Hello from the fake upstream.';
export const DEFAULT_USAGE = Object.freeze({ prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 });
/** The default stream splits DEFAULT_CONTENT so that tests can check chunk order. */
export const DEFAULT_STREAM_CHUNKS = Object.freeze([
    { content: 'Hello' },
    { content: ' from the' },
    { content: ' fake upstream.', finish_reason: 'stop' },
]);

// Waiters reject after this long so that a test whose expectation never comes true fails with a
// message instead of hanging until the runner's global timeout.
const DEFAULT_WAIT_TIMEOUT_MS = 10_000;

const ALPHANUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomId(length) {
    const bytes = randomBytes(length);
    let out = '';
    for (const b of bytes) out += ALPHANUM[b % ALPHANUM.length];
    return out;
}

function nowSeconds() {
    return Math.floor(Date.now() / 1000);
}

/** OpenAI reports these details even when they are zero; Beacon must cope with both forms. */
function withUsageDetails(usage) {
    return {
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: {
            reasoning_tokens: 0,
            audio_tokens: 0,
            accepted_prediction_tokens: 0,
            rejected_prediction_tokens: 0,
        },
        ...usage,
    };
}

/**
 * Builds a realistic OpenAI `chat.completion` body. Tests use it to script answers that differ
 * from the default in one field (a finish reason, a usage block) without restating the rest.
 */
export function chatCompletion({
    model = 'gpt-4o',
    content = DEFAULT_CONTENT,
    finish_reason = 'stop',
    usage = withUsageDetails(DEFAULT_USAGE),
    tool_calls,
    reasoning,
} = {}) {
    const message = { role: 'assistant', content, refusal: null };
    if (tool_calls !== undefined) message.tool_calls = tool_calls;
    if (reasoning !== undefined) message.reasoning = reasoning;
    const body = {
        id: `chatcmpl-${randomId(29)}`,
        object: 'chat.completion',
        created: nowSeconds(),
        model,
        system_fingerprint: 'fp_fake',
        choices: [{ index: 0, message, logprobs: null, finish_reason }],
    };
    // `usage: null` lets a test script an upstream that reports no usage at all.
    if (usage !== null) body.usage = usage;
    return body;
}

function defaultErrorBody(status) {
    return {
        error: {
            message: `fake upstream error ${status}`,
            type: status >= 500 ? 'server_error' : 'invalid_request_error',
            param: null,
            code: null,
        },
    };
}

/**
 * Starts the fake on 127.0.0.1. `port` 0 (the default) lets the OS pick a free port, so tests
 * never collide.
 */
export async function startFakeUpstream({ port = 0 } = {}) {
    const queue = [];
    let defaultScript = {};
    const requests = [];
    let aborts = 0;
    const waiters = new Set();
    // Responses still being written, so that reset() and close() can end them without the
    // end being mistaken for a client abort.
    const inFlight = new Set();

    function notify() {
        for (const w of waiters) {
            let done;
            try {
                done = w.predicate();
            } catch (err) {
                w.settle(() => w.reject(err));
                continue;
            }
            if (done) w.settle(() => w.resolve(w.value()));
        }
    }

    function waitFor(predicate, value, what, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS) {
        return new Promise((resolve, reject) => {
            const w = { predicate, value, resolve, reject };
            const timer = setTimeout(() => {
                w.settle(() => reject(new Error(
                    `fake upstream: timed out after ${timeoutMs} ms waiting for ${what} ` +
                    `(requests=${requests.length}, aborts=${aborts})`)));
            }, timeoutMs);
            w.settle = (fn) => {
                if (!waiters.delete(w)) return;
                clearTimeout(timer);
                fn();
            };
            waiters.add(w);
            notify();
        });
    }

    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const rawBody = Buffer.concat(chunks).toString('utf8');
            let body = null;
            try {
                body = rawBody.length > 0 ? JSON.parse(rawBody) : null;
            } catch {
                // Kept as null: a test that cares reads rawBody.
            }
            const record = {
                method: req.method,
                path: req.url,
                headers: { ...req.headers },
                body,
                rawBody,
                aborted: false,
                /** The client's port: equal ports mean one reused connection. */
                remotePort: req.socket.remotePort,
            };
            requests.push(record);
            notify();
            handle(req, res, record);
        });
    });
    // Open connections, so that closeIdleConnections can tell when the ones it closed are gone.
    const sockets = new Set();
    server.on('connection', (socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
    });

    function handle(req, res, record) {
        const isChat = req.method === 'POST' && /^\/v1\/chat\/completions(\?|$)/.test(req.url);
        if (!isChat) {
            if (req.method === 'GET' && req.url === '/v1/models') {
                sendJson(res, 200, { object: 'list', data: [{ id: 'gpt-4o', object: 'model', owned_by: 'fake' }] });
            } else {
                sendJson(res, 404, defaultErrorBody(404));
            }
            return;
        }
        const script = queue.length > 0 ? queue.shift() : defaultScript;

        // `selfClosed` marks ends the fake chose (destroy, failAfter, reset, close), which are
        // not client aborts.
        const flight = { res, selfClosed: false, controller: new AbortController() };
        inFlight.add(flight);
        res.once('close', () => {
            inFlight.delete(flight);
            flight.controller.abort();
            if (!res.writableFinished && !flight.selfClosed) {
                record.aborted = true;
                aborts += 1;
                notify();
            }
        });

        respond(req, res, record, script, flight).catch((err) => {
            // An abort while sleeping, or a write into a socket the client already closed, is how
            // a cancelled answer stops; the 'close' listener has counted (or will count) it.
            if (err?.name === 'AbortError' || res.destroyed) return;
            console.error('fake upstream: answer failed:', err);
            res.destroy();
        });
    }

    async function respond(req, res, record, script, flight) {
        const signal = flight.controller.signal;
        if (script.delayMs > 0) await sleep(script.delayMs, undefined, { signal });
        if (script.hang) return; // the 'close' listener notices when the client gives up
        if (script.destroy) {
            flight.selfClosed = true;
            req.socket.destroy();
            return;
        }

        const status = script.status ?? 200;
        const headers = script.headers ?? {};
        const upstreamModel = record.body?.model ?? 'gpt-4o';
        if (status >= 400) {
            if (script.text !== undefined) sendText(res, status, script.text, headers);
            else sendJson(res, status, script.json ?? defaultErrorBody(status), headers);
            return;
        }
        if (record.body?.stream === true) {
            await streamAnswer(res, record, script, upstreamModel, headers, flight);
            return;
        }
        if (script.text !== undefined) sendText(res, status, script.text, headers, script.trailing);
        else sendJson(res, status, script.json ?? chatCompletion({ model: upstreamModel }), headers, script.trailing);
    }

    async function streamAnswer(res, record, script, model, headers, flight) {
        const signal = flight.controller.signal;
        const spec = script.stream ?? {};
        const chunks = spec.chunks ?? DEFAULT_STREAM_CHUNKS;
        const usage = spec.usage ?? withUsageDetails(DEFAULT_USAGE);
        const sendUsage = spec.sendUsage ?? record.body?.stream_options?.include_usage === true;
        const id = `chatcmpl-${randomId(29)}`;
        const created = nowSeconds();

        res.writeHead(script.status ?? 200, {
            'content-type': 'text/event-stream; charset=utf-8',
            'cache-control': 'no-cache',
            ...headers,
        });
        // Flush the head now: a test of "waiting for the first byte" must control that moment
        // with delayMs alone, not by when the first chunk happens to be written.
        res.flushHeaders();

        const envelope = (choices, extra = {}) => ({
            id,
            object: 'chat.completion.chunk',
            created,
            model,
            system_fingerprint: 'fp_fake',
            choices,
            ...extra,
        });

        let writes = 0;
        const write = async (payload) => {
            if (writes > 0 && spec.chunkDelayMs > 0) await sleep(spec.chunkDelayMs, undefined, { signal });
            writes += 1;
            // Resolve only once the bytes reached the socket, so failAfter never drops them.
            await new Promise((resolve, reject) => {
                res.write(`data: ${payload}\n\n`, (err) => (err ? reject(err) : resolve()));
            });
        };

        for (let i = 0; i < chunks.length; i++) {
            if (spec.failAfter !== undefined && i >= spec.failAfter) {
                flight.selfClosed = true;
                res.socket?.destroy();
                return;
            }
            const c = chunks[i];
            if (c.raw !== undefined) {
                await write(c.raw);
                continue;
            }
            // Real OpenAI streams name the role in the first delta only.
            const delta = i === 0 ? { role: 'assistant' } : {};
            if (c.content !== undefined) delta.content = c.content;
            if (c.reasoning !== undefined) delta.reasoning = c.reasoning;
            if (c.tool_calls !== undefined) delta.tool_calls = c.tool_calls;
            const isLast = i === chunks.length - 1;
            const extra = sendUsage && spec.usageInLastChunk && isLast ? { usage } : {};
            await write(JSON.stringify(envelope(
                [{ index: 0, delta, logprobs: null, finish_reason: c.finish_reason ?? null }], extra)));
        }
        if (spec.failAfter !== undefined) {
            // failAfter at or past the chunk count: every chunk went out, the ending did not.
            flight.selfClosed = true;
            res.socket?.destroy();
            return;
        }
        if (sendUsage && !spec.usageInLastChunk) {
            await write(JSON.stringify(envelope([], { usage })));
        }
        if (spec.doneWithEnd) {
            // [DONE] and the last chunk in one write, as many servers send them.
            if (spec.chunkDelayMs > 0) await sleep(spec.chunkDelayMs, undefined, { signal });
            // Corked: both leave in one writev, so they arrive in one read.
            res.socket?.cork();
            res.end('data: [DONE]\n\n');
            process.nextTick(() => res.socket?.uncork());
            return;
        }
        await write('[DONE]');
        res.end();
    }

    function sendJson(res, status, obj, headers = {}, trailing = '') {
        sendText(res, status, JSON.stringify(obj), { 'content-type': 'application/json', ...headers }, trailing);
    }

    // `trailing` goes out in the same write as the body without being counted in its length
    // (Node does not enforce the length unless asked to).
    function sendText(res, status, text, headers = {}, trailing = '') {
        const body = Buffer.from(text, 'utf8');
        res.writeHead(status, {
            'content-type': 'text/plain; charset=utf-8',
            ...headers,
            'content-length': String(body.length),
        });
        res.end(trailing ? Buffer.concat([body, Buffer.from(trailing, 'utf8')]) : body);
    }

    function endInFlight() {
        for (const flight of inFlight) {
            flight.selfClosed = true;
            flight.res.destroy();
        }
        inFlight.clear();
    }

    const actualPort = await listenLoopback(server, port);

    return {
        url: `http://127.0.0.1:${actualPort}/v1`,
        origin: `http://127.0.0.1:${actualPort}`,
        port: actualPort,
        /** Every request received, in arrival order (the live array). */
        requests,
        /** Requests whose connection the client closed before the fake finished answering. */
        get aborts() {
            return aborts;
        },
        /** Queues scripts for the next chat completion requests, first in first out. */
        enqueue(...scripts) {
            queue.push(...scripts);
        },
        /** Sets the script used when the queue is empty. */
        setDefault(script) {
            defaultScript = script ?? {};
        },
        /** Scripts not consumed yet, to assert that a test used all it queued. */
        get pending() {
            return queue.length;
        },
        /**
         * Closes the keep-alive connections that carry no request, as a server's idle timeout or
         * a restart does. Resolves once those sockets are closed (their FIN sent).
         */
        closeIdleConnections() {
            const open = [...sockets];
            server.closeIdleConnections();
            const closed = open.filter((socket) => socket.destroyed);
            return Promise.all(closed.map((socket) => (socket.closed ? null : new Promise((resolve) => socket.once('close', resolve)))));
        },
        /** Resolves with the requests once at least `n` have arrived. */
        waitForRequests(n, { timeoutMs } = {}) {
            return waitFor(() => requests.length >= n, () => requests.slice(), `${n} request(s)`, timeoutMs);
        },
        /**
         * Resolves once at least `n` client aborts have been seen in total (so a test that shares
         * the fake passes `fake.aborts + 1`, read before it triggers the abort). Resolves with
         * the aborted request records.
         */
        waitForAbort(n = 1, { timeoutMs } = {}) {
            return waitFor(() => aborts >= n, () => requests.filter((r) => r.aborted), `${n} abort(s)`, timeoutMs);
        },
        /**
         * Clears scripts, the default, recorded requests and the abort count, and ends answers
         * still in flight (hangs from a previous test) without counting them as aborts.
         */
        reset() {
            queue.length = 0;
            defaultScript = {};
            endInFlight();
            requests.length = 0;
            aborts = 0;
        },
        async close() {
            endInFlight();
            for (const w of waiters) w.settle(() => w.reject(new Error('fake upstream closed')));
            server.closeAllConnections();
            await new Promise((resolve) => server.close(() => resolve()));
        },
    };
}

// Standalone mode: serve the default answers until interrupted.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
    const portArg = process.argv.indexOf('--port');
    const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
    const fake = await startFakeUpstream({ port });
    console.log(`listening on ${fake.origin}`);
    const stop = async () => {
        await fake.close();
        process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
}
