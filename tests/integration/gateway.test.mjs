// Integration tests of the gateway core: the real `beacon` binary between fetch and a scripted
// fake provider. They pin the OpenRouter-compatible contract: response shapes, what reaches the
// provider, streaming, fallback, error mapping, input validation, the side endpoints, client
// disconnects and graceful shutdown.
//
// Run: BEACON_BIN=build/src/beacon node --test tests/integration/

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

import { startFakeUpstream, chatCompletion, DEFAULT_CONTENT, DEFAULT_STREAM_CHUNKS } from '../fakes/fake_upstream.mjs';
import {
    makeTempDir, removeDir, writeConfig, createKey, startBeacon, gatewayConfig,
    postJson, getJson, readSse, collectSse, pollUntil, withTimeout,
} from './harness.mjs';

const KEY_NAME = 'integration-tests';
const GEN_ID_RE = /^gen-\d+-[A-Za-z0-9]{20}$/;
const PRICES = {
    'openai/gpt-4o': { prompt: 0.0000025, completion: 0.00001 },
    'backup/model': { prompt: 0.000001, completion: 0.000002 },
};
const BEACON_ONLY_FIELDS = ['models', 'user', 'session_id', 'trace', 'provider', 'route', 'transforms', 'plugins', 'usage'];
const MESSAGES = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Say hello.' },
];
const BASE = { model: 'openai/gpt-4o', messages: MESSAGES };

function expectedCost(model, promptTokens, completionTokens) {
    return promptTokens * PRICES[model].prompt + completionTokens * PRICES[model].completion;
}

function assertClose(actual, expected, what) {
    assert.equal(typeof actual, 'number', `${what} must be a number, got ${JSON.stringify(actual)}`);
    assert.ok(Math.abs(actual - expected) <= 1e-12, `${what}: expected ${expected}, got ${actual}`);
}

/**
 * A fake upstream plus a Beacon configured for it, with one inference key. `extraServer` adds
 * lines to the config's [server] table; `launcher` is startBeacon's.
 */
async function startStack({ extraServer = '', launcher = [] } = {}) {
    const stack = { fake: null, beacon: null, dir: null };
    try {
        stack.fake = await startFakeUpstream();
        stack.dir = await makeTempDir();
        const dataDir = path.join(stack.dir, 'data');
        await mkdir(dataDir);
        const config = await writeConfig(stack.dir, gatewayConfig(stack.fake.url, { extraServer }));
        stack.key = await createKey(dataDir, { name: KEY_NAME });
        // A random upstream key proves Beacon reads it from the named variable, not a constant.
        stack.upstreamKey = `sk-fake-upstream-${randomBytes(8).toString('hex')}`;
        stack.beacon = await startBeacon({ config, dataDir, env: { FAKE_UPSTREAM_KEY: stack.upstreamKey }, launcher });
        stack.api = `${stack.beacon.baseUrl}/api/v1`;
        return stack;
    } catch (err) {
        await stopStack(stack);
        throw err;
    }
}

async function stopStack(stack) {
    let code;
    if (stack?.beacon) code = await stack.beacon.stop();
    if (stack?.fake) await stack.fake.close();
    if (stack?.dir) await removeDir(stack.dir);
    return code;
}

function chat(stack, body, { key = stack.key, headers, path: p = '/api/v1/chat/completions' } = {}) {
    return postJson(`${stack.beacon.baseUrl}${p}`, body, { key, headers });
}

/** Opens a streaming chat request and returns the fetch Response, body unread. */
async function openStream(stack, body, { headers = {}, signal } = {}) {
    return fetch(`${stack.api}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.key}`, ...headers },
        body: JSON.stringify({ ...body, stream: true }),
        signal,
    });
}

/** Splits collected SSE items into the parsed chunks and the raw data payloads. */
function dataOf(events) {
    const data = events.filter((e) => e.data !== undefined);
    return { data, chunks: data.filter((e) => e.json !== undefined).map((e) => e.json) };
}

function contentDeltas(chunks) {
    return chunks
        .flatMap((c) => c.choices ?? [])
        .map((ch) => ch.delta?.content)
        .filter((s) => typeof s === 'string' && s.length > 0);
}

async function generationRecord(stack, id) {
    return pollUntil(async () => {
        const r = await getJson(`${stack.api}/generation?id=${encodeURIComponent(id)}`, { key: stack.key });
        return r.status === 200 ? r : null;
    }, { what: `generation ${id} to be recorded` });
}

function assertErrorShape(res, status) {
    assert.equal(res.status, status, res.text);
    assert.ok(res.body && typeof res.body.error === 'object', `error body expected, got: ${res.text}`);
    assert.equal(res.body.error.code, status);
    assert.equal(typeof res.body.error.message, 'string');
    assert.ok(res.body.error.message.length > 0, 'error.message must not be empty');
}

describe('gateway core', { timeout: 60_000 }, () => {
    let stack;
    before(async () => {
        stack = await startStack();
    });
    after(async () => {
        await stopStack(stack);
    });
    beforeEach(() => stack.fake.reset());

    describe('authentication', () => {
        test('a request without a key is refused with 401 and never reaches the provider', async () => {
            const res = await chat(stack, BASE, { key: null });
            assertErrorShape(res, 401);
            assert.equal(stack.fake.requests.length, 0);
        });

        test('a wrong key is refused with 401', async () => {
            const res = await chat(stack, BASE, { key: 'sk-or-v1-not-a-real-key' });
            assertErrorShape(res, 401);
            assert.equal(stack.fake.requests.length, 0);
        });

        test('the /v1 alias serves chat completions too', async () => {
            const res = await chat(stack, BASE, { path: '/v1/chat/completions' });
            assert.equal(res.status, 200, res.text);
            assert.equal(res.body.choices[0].message.content, DEFAULT_CONTENT);
            assert.equal(res.body.model, 'openai/gpt-4o');
        });
    });

    describe('non-stream completions', () => {
        test('answer carries the generation id, catalog model, provider, content and priced usage', async () => {
            const res = await chat(stack, BASE);
            assert.equal(res.status, 200, res.text);
            const b = res.body;
            assert.match(b.id, GEN_ID_RE);
            assert.equal(res.headers.get('x-generation-id'), b.id);
            assert.equal(b.object, 'chat.completion');
            assert.equal(b.model, 'openai/gpt-4o');
            assert.equal(b.provider, 'FakeAI');
            assert.equal(b.choices.length, 1);
            assert.equal(b.choices[0].message.role, 'assistant');
            assert.equal(b.choices[0].message.content, DEFAULT_CONTENT);
            assert.equal(b.choices[0].finish_reason, 'stop');
            assert.equal(b.choices[0].native_finish_reason, 'stop');
            assert.equal(b.usage.prompt_tokens, 12);
            assert.equal(b.usage.completion_tokens, 5);
            assert.equal(b.usage.total_tokens, 17);
            assertClose(b.usage.cost, expectedCost('openai/gpt-4o', 12, 5), 'usage.cost');
            assert.equal(b.usage.prompt_tokens_details.cached_tokens, 0);
            assert.equal(b.usage.completion_tokens_details.reasoning_tokens, 0);
        });

        test('two answers get two different generation ids', async () => {
            const a = await chat(stack, BASE);
            const b = await chat(stack, BASE);
            assert.equal(a.status, 200, a.text);
            assert.equal(b.status, 200, b.text);
            assert.notEqual(a.body.id, b.body.id);
        });

        test('the provider gets the upstream model, its own key, sampling fields as sent and no Beacon-only field', async () => {
            const tools = [{
                type: 'function',
                function: {
                    name: 'get_weather',
                    description: 'Weather for a city',
                    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
                },
            }];
            const sampling = { temperature: 0.3, max_tokens: 64, top_p: 0.9, stop: ['\n\n', 'END'], seed: 42, tools };
            const beaconOnly = {
                models: ['backup/model'],
                user: 'user-1234',
                session_id: 'session-abc',
                trace: { trace_id: 'workflow-1', trace_name: 'Integration', feature: 'forwarding' },
                provider: { sort: 'price', allow_fallbacks: true },
                route: 'fallback',
                transforms: ['middle-out'],
                plugins: [{ id: 'context-compression', enabled: false }],
                usage: { include: true },
            };
            const res = await chat(stack, { ...BASE, ...sampling, ...beaconOnly });
            assert.equal(res.status, 200, res.text);

            const [up] = await stack.fake.waitForRequests(1);
            assert.equal(up.method, 'POST');
            assert.equal(up.path, '/v1/chat/completions');
            assert.equal(up.headers.authorization, `Bearer ${stack.upstreamKey}`);
            assert.equal(up.body.model, 'gpt-4o');
            assert.deepEqual(up.body.messages, MESSAGES);
            for (const [field, value] of Object.entries(sampling)) {
                assert.deepEqual(up.body[field], value, `${field} must be forwarded unchanged`);
            }
            for (const field of BEACON_ONLY_FIELDS) {
                assert.ok(!(field in up.body), `${field} must not be forwarded upstream`);
            }
            assert.notEqual(up.body.stream, true, 'a non-stream request must not stream upstream');
        });

        const finishReasons = [
            ['stop', 'stop'],
            ['end_turn', 'stop'],
            ['length', 'length'],
            ['max_tokens', 'length'],
            ['content_filter', 'content_filter'],
        ];
        for (const [native, normalized] of finishReasons) {
            test(`upstream finish_reason "${native}" is reported as "${normalized}" with the raw value kept`, async () => {
                stack.fake.enqueue({ json: chatCompletion({ finish_reason: native }) });
                const res = await chat(stack, BASE);
                assert.equal(res.status, 200, res.text);
                assert.equal(res.body.choices[0].finish_reason, normalized);
                assert.equal(res.body.choices[0].native_finish_reason, native);
            });
        }

        test('tool calls come back with finish_reason "tool_calls"', async () => {
            const toolCalls = [{
                id: 'call_abc123',
                type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            }];
            stack.fake.enqueue({ json: chatCompletion({ content: null, tool_calls: toolCalls, finish_reason: 'tool_calls' }) });
            const res = await chat(stack, BASE);
            assert.equal(res.status, 200, res.text);
            assert.equal(res.body.choices[0].finish_reason, 'tool_calls');
            assert.equal(res.body.choices[0].native_finish_reason, 'tool_calls');
            assert.deepEqual(res.body.choices[0].message.tool_calls, toolCalls);
        });

        test('usage details default to 0 when the provider reports none', async () => {
            const usage = { prompt_tokens: 40, completion_tokens: 10, total_tokens: 50 };
            stack.fake.enqueue({ json: chatCompletion({ usage }) });
            const res = await chat(stack, BASE);
            assert.equal(res.status, 200, res.text);
            const u = res.body.usage;
            assert.equal(u.prompt_tokens, 40);
            assert.equal(u.completion_tokens, 10);
            assert.equal(u.total_tokens, 50);
            assertClose(u.cost, expectedCost('openai/gpt-4o', 40, 10), 'usage.cost');
            assert.equal(u.prompt_tokens_details.cached_tokens, 0);
            assert.equal(u.completion_tokens_details.reasoning_tokens, 0);
        });

        test('a number beyond the double range in an answer reaches the client as null, not as invalid JSON', async () => {
            // JSON allows -1e999; Beacon holds it as a double (minus infinity), which JSON text
            // cannot hold. Boost.JSON 1.81 wrote it as -Infinity, which no JSON parser accepts.
            const answer = chatCompletion();
            answer.choices[0].logprobs = { content: [{ token: 'Hello', logprob: 'HUGE', bytes: [72] }] };
            stack.fake.enqueue({ text: JSON.stringify(answer).replace('"HUGE"', '-1e999') });
            const res = await chat(stack, BASE);
            assert.equal(res.status, 200, res.text);
            assert.ok(res.body, `the answer must be JSON: ${res.text}`);
            assert.equal(res.body.choices[0].logprobs.content[0].logprob, null);
            assert.deepEqual(res.body.choices[0].logprobs.content[0].bytes, [72]);
            assert.equal(res.body.choices[0].message.content, DEFAULT_CONTENT);
        });

        test('cached and reasoning token counts from the provider are passed on', async () => {
            const usage = {
                prompt_tokens: 30,
                completion_tokens: 20,
                total_tokens: 50,
                prompt_tokens_details: { cached_tokens: 16 },
                completion_tokens_details: { reasoning_tokens: 8 },
            };
            stack.fake.enqueue({ json: chatCompletion({ usage }) });
            const res = await chat(stack, BASE);
            assert.equal(res.status, 200, res.text);
            assert.equal(res.body.usage.prompt_tokens_details.cached_tokens, 16);
            assert.equal(res.body.usage.completion_tokens_details.reasoning_tokens, 8);
        });

        test('the provider\'s other token details are kept beside our counts, in their order', async () => {
            const usage = {
                prompt_tokens: 30,
                completion_tokens: 20,
                total_tokens: 50,
                prompt_tokens_details: { audio_tokens: 3, cached_tokens: 16 },
                completion_tokens_details: { accepted_prediction_tokens: 1, reasoning_tokens: 8, rejected_prediction_tokens: 2 },
            };
            stack.fake.enqueue({ json: chatCompletion({ usage }) });
            const res = await chat(stack, BASE);
            assert.equal(res.status, 200, res.text);
            assert.match(res.text, /"prompt_tokens_details":\{"audio_tokens":3,"cached_tokens":16\}/);
            assert.match(res.text, /"completion_tokens_details":\{"accepted_prediction_tokens":1,"reasoning_tokens":8,"rejected_prediction_tokens":2\}/);
            assert.equal(typeof res.body.usage.cost, 'number');
            assert.equal(res.body.usage.is_byok, false);
            assert.equal(res.body.usage.cost_details.upstream_inference_cost, null);
        });

        test('an answer without usage gets ours, with zero details, as its last member', async () => {
            const answer = chatCompletion({});
            delete answer.usage;
            stack.fake.enqueue({ json: answer });
            const res = await chat(stack, BASE);
            assert.equal(res.status, 200, res.text);
            assert.deepEqual(Object.keys(res.body).at(-1), 'usage');
            assert.deepEqual(res.body.usage.prompt_tokens_details, { cached_tokens: 0 });
            assert.deepEqual(res.body.usage.completion_tokens_details, { reasoning_tokens: 0 });
            assert.equal(res.body.usage.total_tokens, 0);
        });

        test('the x-session-id header is accepted, alone or beside a body session_id', async () => {
            const headerOnly = await chat(stack, BASE, { headers: { 'x-session-id': 'header-session' } });
            assert.equal(headerOnly.status, 200, headerOnly.text);
            const both = await chat(stack, { ...BASE, session_id: 'body-session' }, { headers: { 'x-session-id': 'header-session' } });
            assert.equal(both.status, 200, both.text);
            assert.equal(both.body.choices[0].message.content, DEFAULT_CONTENT);
        });

        const legacy = [
            ['usage: {include: true}', { usage: { include: true } }],
            ['stream_options on a non-stream request', { stream_options: { include_usage: true } }],
            ['transforms: ["middle-out"]', { transforms: ['middle-out'] }],
            ['route: "fallback"', { route: 'fallback' }],
        ];
        for (const [name, extra] of legacy) {
            test(`the legacy field ${name} is accepted`, async () => {
                const res = await chat(stack, { ...BASE, ...extra });
                assert.equal(res.status, 200, res.text);
                assert.equal(res.body.choices[0].message.content, DEFAULT_CONTENT);
            });
        }
    });

    describe('streaming', () => {
        test('chunks carry the generation id, catalog model and provider; usage comes once, last, then [DONE]', async () => {
            const res = await openStream(stack, BASE);
            assert.equal(res.status, 200);
            assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
            const genId = res.headers.get('x-generation-id');
            assert.match(genId ?? '', GEN_ID_RE);

            const { data, chunks } = dataOf(await collectSse(res.body));
            assert.equal(data.at(-1).data, '[DONE]', 'the stream must end with [DONE]');
            assert.equal(chunks.length, data.length - 1, 'every event before [DONE] must be JSON');
            for (const c of chunks) {
                assert.equal(c.object, 'chat.completion.chunk');
                assert.equal(c.id, genId);
                assert.equal(c.model, 'openai/gpt-4o');
                assert.equal(c.provider, 'FakeAI');
            }
            assert.deepEqual(contentDeltas(chunks), DEFAULT_STREAM_CHUNKS.map((c) => c.content));

            const withUsage = chunks.filter((c) => c.usage != null);
            assert.equal(withUsage.length, 1, 'usage must appear exactly once');
            const last = chunks.at(-1);
            assert.equal(withUsage[0], last, 'usage must ride on the final chunk');
            assert.deepEqual(last.choices, []);
            assert.equal(last.usage.prompt_tokens, 12);
            assert.equal(last.usage.completion_tokens, 5);
            assert.equal(last.usage.total_tokens, 17);
            assertClose(last.usage.cost, expectedCost('openai/gpt-4o', 12, 5), 'usage.cost');
            const finishes = chunks.flatMap((c) => c.choices).map((ch) => ch.finish_reason).filter((f) => f != null);
            assert.deepEqual(finishes, ['stop']);
        });

        test('a number beyond the double range in a chunk reaches the client as null, not as invalid JSON', async () => {
            const first = {
                id: 'chatcmpl-huge',
                object: 'chat.completion.chunk',
                created: 1,
                model: 'gpt-4o',
                choices: [{
                    index: 0,
                    delta: { role: 'assistant', content: 'Hi' },
                    logprobs: { content: [{ token: 'Hi', logprob: 'HUGE' }] },
                    finish_reason: null,
                }],
            };
            stack.fake.enqueue({
                stream: { chunks: [{ raw: JSON.stringify(first).replace('"HUGE"', '1e999') }, { content: '!', finish_reason: 'stop' }] },
            });
            const res = await openStream(stack, BASE);
            assert.equal(res.status, 200);
            const { data, chunks } = dataOf(await collectSse(res.body));
            assert.equal(chunks.length, data.length - 1, `every event before [DONE] must be JSON: ${JSON.stringify(data)}`);
            assert.equal(chunks[0].choices[0].logprobs.content[0].logprob, null);
            assert.deepEqual(contentDeltas(chunks), ['Hi', '!']);
        });

        test('a stream whose end arrives with [DONE] leaves its provider connection for the next call', async () => {
            // Each I/O thread of Beacon has its own pool, and a request lands on whichever thread
            // accepted its connection: with reuse, six streams in a row use at most one upstream
            // connection per thread (two on a 2-core machine); without it, six.
            const n = 6;
            stack.fake.enqueue(...Array.from({ length: n }, () => ({ stream: { doneWithEnd: true } })));
            for (let i = 0; i < n; i++) {
                const res = await openStream(stack, BASE);
                assert.equal(res.status, 200);
                const { data } = dataOf(await collectSse(res.body));
                assert.equal(data.at(-1).data, '[DONE]');
            }
            const ports = (await stack.fake.waitForRequests(n)).map((r) => r.remotePort);
            assert.ok(new Set(ports).size < n, `every stream opened its own provider connection (ports ${ports})`);
        });

        test('the provider is asked to stream with usage, whatever the client said about usage', async () => {
            const res = await openStream(stack, { ...BASE, temperature: 0.2, stream_options: { include_usage: false } });
            assert.equal(res.status, 200);
            const { chunks } = dataOf(await collectSse(res.body));
            assert.equal(chunks.filter((c) => c.usage != null).length, 1, 'usage is always sent');

            const [up] = await stack.fake.waitForRequests(1);
            assert.equal(up.body.model, 'gpt-4o');
            assert.equal(up.body.stream, true);
            assert.equal(up.body.stream_options?.include_usage, true);
            assert.equal(up.body.temperature, 0.2);
            assert.equal(up.headers.authorization, `Bearer ${stack.upstreamKey}`);
        });

        test('usage sent on the provider\'s last content chunk still ends up alone in a final empty-choices chunk', async () => {
            const usage = { prompt_tokens: 20, completion_tokens: 2, total_tokens: 22 };
            stack.fake.enqueue({
                stream: { chunks: [{ content: 'Two' }, { content: ' words', finish_reason: 'stop' }], usage, usageInLastChunk: true },
            });
            const res = await openStream(stack, BASE);
            const { data, chunks } = dataOf(await collectSse(res.body));
            assert.equal(data.at(-1).data, '[DONE]');
            assert.deepEqual(contentDeltas(chunks), ['Two', ' words']);
            const withUsage = chunks.filter((c) => c.usage != null);
            assert.equal(withUsage.length, 1);
            assert.equal(withUsage[0], chunks.at(-1));
            assert.deepEqual(chunks.at(-1).choices, []);
            assert.equal(chunks.at(-1).usage.total_tokens, 22);
            assertClose(chunks.at(-1).usage.cost, expectedCost('openai/gpt-4o', 20, 2), 'usage.cost');
        });

        test('keep-alive comments are sent while the provider has not answered', async () => {
            stack.fake.enqueue({ delayMs: 400 });
            const res = await openStream(stack, BASE);
            assert.equal(res.status, 200);
            const events = await collectSse(res.body);
            const firstData = events.findIndex((e) => e.data !== undefined);
            assert.ok(firstData > 0, 'data events expected after comments');
            const before = events.slice(0, firstData);
            assert.ok(before.some((e) => e.comment === 'OPENROUTER PROCESSING'),
                `a ": OPENROUTER PROCESSING" comment expected before the first data event, got ${JSON.stringify(before)}`);
            assert.deepEqual(contentDeltas(dataOf(events).chunks), DEFAULT_STREAM_CHUNKS.map((c) => c.content));
        });

        test('a provider failing mid-stream ends the stream with an error event after the content already sent', async () => {
            stack.fake.enqueue({
                stream: {
                    chunks: [{ content: 'Partial' }, { content: ' answer' }, { content: ' never' }, { content: ' sent', finish_reason: 'stop' }],
                    failAfter: 2,
                },
            });
            const res = await openStream(stack, BASE);
            assert.equal(res.status, 200);
            const genId = res.headers.get('x-generation-id');
            const { data, chunks } = dataOf(await collectSse(res.body));

            const errorAt = chunks.findIndex((c) => c.error !== undefined);
            assert.ok(errorAt >= 0, `an error event expected, got ${JSON.stringify(chunks)}`);
            assert.equal(errorAt, chunks.length - 1, 'the error event must be the last JSON event');
            assert.deepEqual(contentDeltas(chunks.slice(0, errorAt)), ['Partial', ' answer']);

            const errEvent = chunks[errorAt];
            assert.equal(errEvent.id, genId);
            assert.equal(errEvent.object, 'chat.completion.chunk');
            assert.equal(typeof errEvent.error.code, 'number');
            assert.equal(typeof errEvent.error.message, 'string');
            assert.equal(errEvent.choices[0].finish_reason, 'error');

            // [DONE] after the error event is allowed, nothing else is.
            const afterError = data.slice(data.findIndex((e) => e.json === errEvent) + 1).map((e) => e.data);
            assert.ok(afterError.length === 0 || (afterError.length === 1 && afterError[0] === '[DONE]'),
                `unexpected events after the error: ${JSON.stringify(afterError)}`);
        });
    });

    describe('fallback', () => {
        const triggers = [
            ['a 503', { status: 503 }],
            ['a 429', { status: 429, headers: { 'retry-after': '1' } }],
            ['a dropped connection', { destroy: true }],
            ['a hang past first_byte_timeout_ms', { hang: true }],
        ];
        for (const [name, script] of triggers) {
            test(`${name} from the first model moves on to the next one in models`, async () => {
                stack.fake.enqueue(script);
                const res = await chat(stack, { ...BASE, models: ['backup/model'] });
                assert.equal(res.status, 200, res.text);
                assert.equal(res.body.model, 'backup/model');
                assert.equal(res.body.provider, 'FakeAI');
                assert.equal(res.body.choices[0].message.content, DEFAULT_CONTENT);
                // Billed as the model that answered.
                assertClose(res.body.usage.cost, expectedCost('backup/model', 12, 5), 'usage.cost');

                assert.equal(stack.fake.requests.length, 2);
                assert.deepEqual(stack.fake.requests.map((r) => r.body.model), ['gpt-4o', 'backup-model']);
            });
        }

        test('a stream falls back before its first token and reports the model that answered', async () => {
            stack.fake.enqueue({ status: 503 });
            const res = await openStream(stack, { ...BASE, models: ['backup/model'] });
            assert.equal(res.status, 200);
            const { data, chunks } = dataOf(await collectSse(res.body));
            assert.equal(data.at(-1).data, '[DONE]');
            assert.ok(chunks.length > 0);
            for (const c of chunks) assert.equal(c.model, 'backup/model');
            assert.deepEqual(contentDeltas(chunks), DEFAULT_STREAM_CHUNKS.map((c) => c.content));
            assert.deepEqual(stack.fake.requests.map((r) => r.body.model), ['gpt-4o', 'backup-model']);
        });
    });

    describe('provider errors without a fallback', () => {
        test('a provider 500 becomes a 502 naming the provider and carrying its raw body', async () => {
            const raw = 'upstream exploded: the GPU is on fire';
            stack.fake.enqueue({ status: 500, text: raw });
            const res = await chat(stack, BASE);
            assertErrorShape(res, 502);
            assert.equal(res.body.error.metadata?.provider_name, 'FakeAI');
            assert.equal(res.body.error.metadata?.raw, raw);
        });

        test('a provider 400 stays a 400 and carries its raw body', async () => {
            const raw = JSON.stringify({ error: { message: "Invalid 'max_tokens': too large", type: 'invalid_request_error', param: 'max_tokens' } });
            stack.fake.enqueue({ status: 400, text: raw, headers: { 'content-type': 'application/json' } });
            const res = await chat(stack, BASE);
            assertErrorShape(res, 400);
            assert.equal(res.body.error.metadata?.raw, raw);
        });

        test('a provider silent past first_byte_timeout_ms gives a 504 well before the total timeout', async () => {
            stack.fake.enqueue({ hang: true });
            const started = performance.now();
            const res = await chat(stack, BASE);
            const elapsed = performance.now() - started;
            assertErrorShape(res, 504);
            assert.ok(elapsed >= 1400, `504 after ${elapsed.toFixed(0)} ms, before first_byte_timeout_ms (1500)`);
            assert.ok(elapsed < 4500, `504 after ${elapsed.toFixed(0)} ms, not driven by first_byte_timeout_ms`);
        });

        test('a provider 429 stays a 429', async () => {
            stack.fake.enqueue({ status: 429, json: { error: { message: 'Rate limit reached', type: 'requests' } } });
            const res = await chat(stack, BASE);
            assertErrorShape(res, 429);
        });
    });

    describe('input validation', () => {
        const invalid = [
            ['malformed JSON', '{"model": "openai/gpt-4o", "messages": [', 400, null],
            ['missing messages', { model: 'openai/gpt-4o' }, 400, /messages/i],
            ['a temperature that is not a number', { ...BASE, temperature: 'hot' }, 400, /temperature/i],
            ['a user longer than 128 characters', { ...BASE, user: 'u'.repeat(129) }, 400, /user/i],
            ['a session_id longer than 256 characters', { ...BASE, session_id: 's'.repeat(257) }, 400, null],
            ['a trace that is a string', { ...BASE, trace: 'trace-1' }, 400, /trace/i],
            ['a trace that is an array', { ...BASE, trace: [{ trace_id: 'x' }] }, 400, /trace/i],
            ['an unknown model', { ...BASE, model: 'nobody/no-such-model' }, 404, null],
        ];
        for (const [name, body, status, mention] of invalid) {
            test(`${name} is refused with ${status} before reaching the provider`, async () => {
                const res = await chat(stack, body);
                assertErrorShape(res, status);
                if (mention) assert.match(res.body.error.message, mention);
                assert.equal(stack.fake.requests.length, 0);
            });
        }

        test('user and session_id at their maximum length are accepted', async () => {
            const res = await chat(stack, { ...BASE, user: 'u'.repeat(128), session_id: 's'.repeat(256) });
            assert.equal(res.status, 200, res.text);
        });

        test('a body over max_body_bytes is refused with 413', async () => {
            const body = { ...BASE, messages: [{ role: 'user', content: 'x'.repeat(70_000) }] };
            const res = await chat(stack, body);
            assertErrorShape(res, 413);
            assert.equal(stack.fake.requests.length, 0);
        });

        test('a body just under max_body_bytes is accepted', async () => {
            const body = { ...BASE, messages: [{ role: 'user', content: 'x'.repeat(60_000) }] };
            const res = await chat(stack, body);
            assert.equal(res.status, 200, res.text);
        });
    });

    describe('side endpoints', () => {
        test('GET /api/v1/models lists the catalog with string prices', async () => {
            const res = await getJson(`${stack.api}/models`, { key: stack.key });
            assert.equal(res.status, 200, res.text);
            assert.ok(Array.isArray(res.body.data));
            const gpt = res.body.data.find((m) => m.id === 'openai/gpt-4o');
            assert.ok(gpt, 'openai/gpt-4o must be listed');
            assert.equal(gpt.pricing.prompt, '0.0000025');
            assert.equal(gpt.pricing.completion, '0.00001');
            assert.equal(typeof gpt.context_length, 'number');
            assert.ok(res.body.data.some((m) => m.id === 'backup/model'), 'backup/model must be listed');
        });

        test('GET /api/v1/generation returns the record of a completed request', async () => {
            const done = await chat(stack, BASE);
            assert.equal(done.status, 200, done.text);
            const { body } = await generationRecord(stack, done.body.id);
            const g = body.data;
            assert.equal(g.id, done.body.id);
            assert.equal(g.model, 'openai/gpt-4o');
            assert.equal(g.provider_name, 'FakeAI');
            assert.equal(g.tokens_prompt, 12);
            assert.equal(g.tokens_completion, 5);
            assertClose(g.total_cost, expectedCost('openai/gpt-4o', 12, 5), 'total_cost');
            assert.equal(g.streamed, false);
            assert.equal(g.cancelled, false);
            assert.equal(g.finish_reason, 'stop');
            assert.equal(typeof g.latency, 'number');
            assert.ok(g.latency >= 0);
        });

        test('a streamed request is recorded as streamed', async () => {
            const res = await openStream(stack, BASE);
            const genId = res.headers.get('x-generation-id');
            await collectSse(res.body);
            const g = (await generationRecord(stack, genId)).body.data;
            assert.equal(g.streamed, true);
            assert.equal(g.cancelled, false);
            assert.equal(g.tokens_prompt, 12);
            assert.equal(g.tokens_completion, 5);
            assert.equal(g.finish_reason, 'stop');
        });

        test('an unknown generation id is a 404', async () => {
            const res = await getJson(`${stack.api}/generation?id=gen-1700000000-AAAAAAAAAAAAAAAAAAAA`, { key: stack.key });
            assertErrorShape(res, 404);
        });

        test('GET /api/v1/key describes the calling key', async () => {
            const res = await getJson(`${stack.api}/key`, { key: stack.key });
            assert.equal(res.status, 200, res.text);
            assert.equal(res.body.data.label, KEY_NAME);
            assert.equal(res.body.data.is_management_key, false);
        });

        test('health and readiness probes answer 200', async () => {
            for (const p of ['/healthz', '/readyz']) {
                const res = await fetch(`${stack.beacon.baseUrl}${p}`);
                assert.equal(res.status, 200, `${p} answered ${res.status}`);
                await res.body?.cancel();
            }
        });
    });
});

// Raw HTTP/1.1 over one socket, for what fetch cannot control: how the request's bytes are cut
// into writes and how fast the answer is read. Resolves with the whole response text once
// `complete(text)` says it is all there.
function rawExchange(port, pieces, { complete, pauseMs = 0 } = {}) {
    return new Promise((resolve, reject) => {
        const socket = net.createConnection({ host: '127.0.0.1', port });
        const parts = [];
        let text = '';
        socket.on('error', reject);
        socket.on('data', (d) => {
            parts.push(d);
            text = Buffer.concat(parts).toString('utf8');
            if (complete(text)) {
                socket.destroy();
                resolve(text);
            }
        });
        socket.on('end', () => reject(new Error(`connection ended early after ${text.length} bytes`)));
        socket.on('connect', async () => {
            // A reader that pauses fills the socket buffers: Beacon's write cannot finish at once.
            if (pauseMs > 0) {
                socket.pause();
                setTimeout(() => socket.resume(), pauseMs);
            }
            for (const piece of pieces) {
                if (typeof piece === 'number') await new Promise((r) => setTimeout(r, piece));
                else socket.write(piece);
            }
        });
    });
}

/** A content-length response's body, once its head and all its bytes are in `text`. */
function lengthBody(text) {
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const m = /\r\ncontent-length: (\d+)\r\n/i.exec(text.slice(0, end + 2));
    if (!m) return null;
    const body = Buffer.from(text.slice(end + 4), 'utf8');
    return body.length >= Number(m[1]) ? body.subarray(0, Number(m[1])).toString('utf8') : null;
}

describe('HTTP framing', { timeout: 60_000 }, () => {
    let stack;
    let port;
    before(async () => {
        stack = await startStack();
        port = Number(new URL(stack.beacon.baseUrl).port);
    });
    after(async () => {
        await stopStack(stack);
    });
    beforeEach(() => stack.fake.reset());

    // A chat request over `agent` (an http.Agent), answered as { status, text }.
    const postOn = (agent) => new Promise((resolve, reject) => {
        const body = JSON.stringify(BASE);
        const req = http.request({
            host: '127.0.0.1', port, path: '/api/v1/chat/completions', method: 'POST', agent,
            headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${stack.key}` },
        }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { text += d; });
            res.on('end', () => resolve({ status: res.statusCode, text }));
        });
        req.on('error', reject);
        req.end(body);
    });

    const head = (stack, extra) =>
        `POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${stack.key}\r\n` +
        `Content-Type: application/json\r\n${extra}\r\n`;

    test('a body that arrives after its head, in pieces, is read whole', async () => {
        const long = 'pieces ' + 'x'.repeat(300);
        const body = JSON.stringify({ ...BASE, messages: [...MESSAGES, { role: 'user', content: long }] });
        const cut = [0, 7, 100, body.length];
        const pieces = [head(stack, `Content-Length: ${Buffer.byteLength(body)}\r\n`)];
        for (let i = 1; i < cut.length; i++) pieces.push(20, body.slice(cut[i - 1], cut[i]));
        const text = await rawExchange(port, pieces, { complete: lengthBody });
        assert.match(text, /^HTTP\/1\.1 200 /);
        assert.equal(JSON.parse(lengthBody(text)).choices[0].message.content, DEFAULT_CONTENT);
        assert.equal(stack.fake.requests.length, 1);
        assert.equal(stack.fake.requests[0].body.messages.at(-1).content, long);
    });

    test('a chunked body, several chunks in one write and the end in another, is read whole', async () => {
        const body = JSON.stringify(BASE);
        const a = body.slice(0, 10), b = body.slice(10, 31), c = body.slice(31);
        const chunk = (s) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
        const text = await rawExchange(port, [
            head(stack, 'Transfer-Encoding: chunked\r\n') + chunk(a) + chunk(b),
            20,
            chunk(c) + '0\r\n\r\n',
        ], { complete: lengthBody });
        assert.match(text, /^HTTP\/1\.1 200 /);
        assert.equal(JSON.parse(lengthBody(text)).choices[0].message.content, DEFAULT_CONTENT);
    });

    test('a request and its body in one write, followed by a malformed chunk, is refused with 400', async () => {
        const text = await rawExchange(port, [head(stack, 'Transfer-Encoding: chunked\r\n') + 'zz\r\n{}\r\n'], {
            complete: (t) => lengthBody(t) !== null,
        });
        assert.match(text, /^HTTP\/1\.1 400 /);
        assert.equal(JSON.parse(lengthBody(text)).error.code, 400);
        assert.equal(stack.fake.requests.length, 0);
    });

    test('an answer larger than the socket buffers reaches a slow reader intact', async () => {
        // 6 MiB of content: more than loopback's send and receive buffers hold, so the write
        // that answers cannot finish at once while the reader pauses.
        const content = 'abcdefghij'.repeat(629_146);
        stack.fake.enqueue({ json: chatCompletion({ content }) });
        const body = JSON.stringify(BASE);
        const text = await rawExchange(port, [head(stack, `Content-Length: ${body.length}\r\n`) + body], {
            complete: lengthBody, pauseMs: 300,
        });
        const answer = JSON.parse(lengthBody(text));
        assert.equal(answer.choices[0].message.content.length, content.length);
        assert.equal(answer.choices[0].message.content, content);
    });

    // Two chat requests over one keep-alive client connection, so on one Beacon thread, whose
    // pool then holds the provider connection of the first; `between` runs after the first. The
    // second must succeed, on a new provider connection.
    async function secondNeedsNewConnection(between) {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
            assert.equal((await postOn(agent)).status, 200);
            await between();
            const second = await postOn(agent);
            assert.equal(second.status, 200, second.text);
            const [a, b] = await stack.fake.waitForRequests(2);
            assert.notEqual(a.remotePort, b.remotePort, 'the second request needed a new provider connection');
        } finally {
            agent.destroy();
        }
    }

    test('a provider connection the provider closed while idle is not used again, however briefly idle', async () => {
        // As a provider restarting under load does: the connection closes right after its
        // answer, and the next request comes at once (session 7 reused a connection idle for
        // under a second unchecked, and that request failed).
        await secondNeedsNewConnection(() => stack.fake.closeIdleConnections());
    });

    test('a provider connection that sent bytes past the end of its answer is not used again', async () => {
        // Reused, the connection would hand the stray bytes to the next request's answer.
        stack.fake.enqueue({ trailing: 'stray bytes\r\n' });
        await secondNeedsNewConnection(async () => {});
    });

    test('streamed events cut across reads of the upstream and joined in one read are all relayed in order', async () => {
        const chunks = Array.from({ length: 40 }, (_, i) => ({ content: `t${i} ` }));
        stack.fake.enqueue({ stream: { chunks: [...chunks, { content: 'end', finish_reason: 'stop' }], chunkDelayMs: 0 } });
        const res = await openStream(stack, BASE);
        assert.equal(res.status, 200);
        const { chunks: got } = dataOf(await collectSse(res.body));
        assert.equal(contentDeltas(got).join(''), chunks.map((c) => c.content).join('') + 'end');
    });
});

test('serve raises its open-file limit to the hard limit', { timeout: 30_000 }, async () => {
    // Started with a soft limit of 256, below the hard limit.
    const stack = await startStack({ launcher: ['prlimit', '--nofile=256:', '--'] });
    try {
        const text = await readFile(`/proc/${stack.beacon.proc.pid}/limits`, 'utf8');
        const m = /^Max open files\s+(\d+)\s+(\d+)/m.exec(text);
        const [soft, hard] = [Number(m[1]), Number(m[2])];
        assert.ok(hard > 256, `the hard limit (${hard}) must be above 256 for this test`);
        assert.equal(soft, hard);
    } finally {
        await stopStack(stack);
    }
});

test('after a burst of 160 concurrent requests, the next burst reuses the same provider connections', { timeout: 60_000 }, async () => {
    // One I/O thread, so both bursts share one pool. Each answer waits, so a burst is in flight
    // at once. Pooling too few idle connections (64) closed the extra ones after a burst and
    // opened them again in the next.
    const n = 160;
    const stack = await startStack({ extraServer: 'threads = 1' });
    try {
        stack.fake.setDefault({ delayMs: 100 });
        const burst = () => Promise.all(Array.from({ length: n }, () => chat(stack, BASE)));
        for (const res of await burst()) assert.equal(res.status, 200, res.text);
        for (const res of await burst()) assert.equal(res.status, 200, res.text);
        // At most one connection per request in flight at once (n), however the bursts
        // overlapped: a slow build may have fewer of the first burst in flight together than
        // of the second. With 64 pooled, the second burst reopened what the first had closed.
        const ports = (await stack.fake.waitForRequests(2 * n)).map((r) => r.remotePort);
        const opened = new Set(ports).size;
        assert.ok(opened <= n + 2, `two bursts of ${n} opened ${opened} provider connections`);
    } finally {
        await stopStack(stack);
    }
});

describe('server.idle_timeout_ms', { timeout: 30_000 }, () => {
    const IDLE_MS = 400;
    let stack;
    let port;
    before(async () => {
        stack = await startStack({ extraServer: `idle_timeout_ms = ${IDLE_MS}` });
        port = Number(new URL(stack.beacon.baseUrl).port);
    });
    after(async () => {
        await stopStack(stack);
    });
    beforeEach(() => stack.fake.reset());

    /** Connects, writes `text`, and resolves when Beacon closes: what it sent and when. */
    function untilClosed(text) {
        return new Promise((resolve, reject) => {
            const socket = net.createConnection({ host: '127.0.0.1', port });
            let received = '';
            let lastAt = 0;
            socket.on('error', reject);
            socket.on('data', (d) => {
                received += d.toString('utf8');
                lastAt = performance.now();
            });
            socket.on('close', () => resolve({ received, closedAt: performance.now(), lastAt }));
            socket.on('connect', () => {
                lastAt = performance.now();
                socket.write(text);
            });
        });
    }

    test('a kept-alive connection left idle is closed after the timeout, not before', async () => {
        const body = JSON.stringify(BASE);
        const head = `POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${stack.key}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
        const { received, closedAt, lastAt } = await withTimeout(untilClosed(head + body), 10_000, 'Beacon to close the idle connection');
        assert.match(received, /^HTTP\/1\.1 200 /);
        assert.equal(JSON.parse(lengthBody(received)).choices[0].message.content, DEFAULT_CONTENT);
        const idle = closedAt - lastAt;
        assert.ok(idle >= IDLE_MS - 50, `closed ${idle.toFixed(0)} ms after the answer`);
    });

    test('a request head that never ends is cut off after the timeout, without an answer', async () => {
        const { received, closedAt, lastAt } = await withTimeout(
            untilClosed('POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n'), 10_000, 'Beacon to close the slow request');
        assert.equal(received, '');
        assert.ok(closedAt - lastAt >= IDLE_MS - 50, `closed after ${(closedAt - lastAt).toFixed(0)} ms`);
        assert.equal(stack.fake.requests.length, 0);
    });

    test('an answer that takes longer than the idle timeout is not cut', async () => {
        stack.fake.enqueue({ delayMs: 3 * IDLE_MS });
        const res = await chat(stack, BASE);
        assert.equal(res.status, 200, res.text);
        assert.equal(res.body.choices[0].message.content, DEFAULT_CONTENT);
    });
});

describe('client disconnect', { timeout: 30_000 }, () => {
    let stack;
    before(async () => {
        stack = await startStack();
    });
    after(async () => {
        await stopStack(stack);
    });

    test('a client leaving mid-stream makes Beacon close its provider connection', async () => {
        const chunks = Array.from({ length: 50 }, (_, i) => ({ content: `tok${i} ` }));
        stack.fake.enqueue({ stream: { chunks, chunkDelayMs: 200 } });
        const controller = new AbortController();
        const res = await openStream(stack, BASE, { signal: controller.signal });
        assert.equal(res.status, 200);
        const genId = res.headers.get('x-generation-id');

        // Read by hand rather than with for-await: leaving a for-await loop would cancel the
        // body itself, and this test is about the abort below.
        const events = readSse(res.body);
        let first;
        while (first === undefined) {
            const { value, done } = await events.next();
            assert.ok(!done, 'the stream ended before any content');
            if (value.json !== undefined && contentDeltas([value.json]).length > 0) first = value.json;
        }
        assert.deepEqual(contentDeltas([first]), ['tok0 ']);
        controller.abort();
        await assert.rejects(events.next(), { name: 'AbortError' });

        await withTimeout(stack.fake.waitForAbort(1), 3000, 'Beacon to close the provider connection');
        assert.equal(stack.fake.requests.length, 1);

        const g = (await generationRecord(stack, genId)).body.data;
        assert.equal(g.streamed, true);
        assert.equal(g.cancelled, true);

        const health = await fetch(`${stack.beacon.baseUrl}/healthz`);
        assert.equal(health.status, 200, 'Beacon must keep serving after a disconnect');
    });
    test('a client leaving while a whole answer is pending makes Beacon close its provider connection', async () => {
        // Whole answers watch the client's socket only after 250 ms (most answers come sooner);
        // the client here has already gone by then, so Beacon notices when the watch starts.
        stack.fake.reset();
        stack.fake.enqueue({ hang: true });
        const controller = new AbortController();
        const pending = postJson(`${stack.beacon.baseUrl}/api/v1/chat/completions`, BASE, {
            key: stack.key,
            signal: controller.signal,
        });
        await withTimeout(stack.fake.waitForRequests(1), 3000, 'the request to reach the provider');
        const leftAt = performance.now();
        controller.abort();
        await assert.rejects(pending, { name: 'AbortError' });
        // Well before first_byte_timeout_ms (1500), which would also close the connection.
        await withTimeout(stack.fake.waitForAbort(1), 1000, 'Beacon to close the provider connection');
        const noticed = performance.now() - leftAt;
        assert.ok(noticed < 1000, `noticed after ${noticed.toFixed(0)} ms`);
        assert.equal(stack.fake.requests.length, 1);
        const health = await fetch(`${stack.beacon.baseUrl}/healthz`);
        assert.equal(health.status, 200, 'Beacon must keep serving after a disconnect');
    });
    test('a client leaving during a long gap after the first token is noticed at once', async () => {
        // The upstream sends one token, then stays silent for 20 s: only watching the client's
        // socket (not a failed write of the next chunk) can notice it left.
        stack.fake.reset();
        const chunks = [{ content: 'first ' }, { content: 'late ' }];
        stack.fake.enqueue({ stream: { chunks, chunkDelayMs: 20_000 } });
        const controller = new AbortController();
        const res = await openStream(stack, BASE, { signal: controller.signal });
        assert.equal(res.status, 200);
        const events = readSse(res.body);
        const comments = [];
        let first;
        while (first === undefined) {
            const { value, done } = await events.next();
            assert.ok(!done, 'the stream ended before any content');
            if (value.comment !== undefined) comments.push(value.comment);
            if (value.json !== undefined && contentDeltas([value.json]).length > 0) first = value.json;
        }
        // Keep-alive comments also flow during the gap (sse_keepalive_ms = 100).
        const next = await withTimeout(events.next(), 2000, 'a keep-alive comment during the gap');
        assert.equal(next.value.comment, 'OPENROUTER PROCESSING');
        controller.abort();
        await assert.rejects(events.next(), { name: 'AbortError' });
        await withTimeout(stack.fake.waitForAbort(1), 3000, 'Beacon to close the provider connection');
    });
});

describe('graceful shutdown', { timeout: 30_000 }, () => {
    let stack;
    before(async () => {
        stack = await startStack();
    });
    after(async () => {
        await stopStack(stack);
    });

    test('SIGTERM lets an in-flight stream finish, then Beacon exits 0', async () => {
        const parts = Array.from({ length: 10 }, (_, i) => `part${i} `);
        stack.fake.enqueue({
            stream: { chunks: parts.map((content, i) => ({ content, finish_reason: i === parts.length - 1 ? 'stop' : undefined })), chunkDelayMs: 150 },
        });
        const res = await openStream(stack, BASE);
        assert.equal(res.status, 200);

        const seen = [];
        let terminated = false;
        for await (const ev of readSse(res.body)) {
            seen.push(ev);
            if (!terminated && ev.json !== undefined && contentDeltas([ev.json]).length > 0) {
                // The first token is out and nine more are still to come from the provider.
                assert.ok(stack.beacon.proc.kill('SIGTERM'), 'SIGTERM must be delivered');
                terminated = true;
            }
        }
        assert.ok(terminated, 'the stream produced no content before ending');
        const { data, chunks } = dataOf(seen);
        assert.deepEqual(contentDeltas(chunks), parts);
        assert.equal(data.at(-1).data, '[DONE]');

        const code = await withTimeout(stack.beacon.exited, 15_000, 'Beacon to exit after SIGTERM');
        assert.equal(code, 0, `exit code ${code}; stderr:\n${stack.beacon.stderr}`);
    });
});
