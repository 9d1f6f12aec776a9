// Integration tests of Broadcast to Langfuse: the real `beacon` binary between a client, the
// scripted fake provider and one or two strict fake Langfuse servers. They pin what the golden
// cases cannot: the official SDK end to end, Privacy Mode across every byte sent, retries and
// Retry-After, exactly-once delivery, isolation from a slow Langfuse, the legacy 207 handling.
//
// Run: BEACON_BIN=build/src/beacon node --test tests/integration/broadcast.test.mjs

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

import OpenAI from '../e2e/node_modules/openai/index.mjs';
import { startFakeUpstream, chatCompletion } from '../fakes/fake_upstream.mjs';
import {
    startFakeLangfuse, broadcastToml, langfuseTraceId, generationObservationId, spanObservationId,
} from '../fakes/fake_langfuse.mjs';
import {
    makeTempDir, removeDir, writeConfig, createKey, startBeacon, gatewayConfig, postJson, collectSse,
} from './harness.mjs';

const KEY_NAME = 'broadcast-tests';
const MODEL = 'openai/gpt-4o';
const PRICES = { prompt: 0.0000025, completion: 0.00001 };
const USAGE = {
    prompt_tokens: 120,
    completion_tokens: 30,
    total_tokens: 150,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 },
};
const SEED = {
    model: MODEL,
    messages: [{ role: 'user', content: 'Summarize this document...' }],
    user: 'user_12345',
    session_id: 'session_abc',
    trace: {
        trace_id: 'workflow_12345',
        trace_name: 'Document Processing Pipeline',
        span_name: 'Summarization Step',
        generation_name: 'Generate Summary',
        environment: 'production',
        pipeline_version: '2.1.0',
    },
};

function assertClose(actual, expected, what) {
    assert.equal(typeof actual, 'number', `${what} must be a number, got ${JSON.stringify(actual)}`);
    assert.ok(Math.abs(actual - expected) <= 1e-12, `${what}: expected ${expected}, got ${actual}`);
}

/**
 * A fake upstream, one fake Langfuse per destination and a Beacon broadcasting to them.
 * destinations: [{privacyMode, transport, secretKeyEnv}]
 */
async function startStack({ destinations = [{}] } = {}) {
    const stack = { upstream: null, langfuses: [], beacon: null, dir: null };
    try {
        stack.upstream = await startFakeUpstream();
        const env = { FAKE_UPSTREAM_KEY: 'sk-fake-upstream-broadcast' };
        const dests = [];
        for (const [i, d] of destinations.entries()) {
            const lf = await startFakeLangfuse();
            stack.langfuses.push(lf);
            if (d.secretKeyEnv) env[d.secretKeyEnv] = lf.secretKey;
            dests.push({ ...d, name: d.name ?? `langfuse-${i + 1}`, url: lf.url });
        }
        stack.langfuse = stack.langfuses[0];
        stack.dir = await makeTempDir('beacon-broadcast-');
        const dataDir = path.join(stack.dir, 'data');
        await mkdir(dataDir);
        const config = await writeConfig(stack.dir,
            gatewayConfig(stack.upstream.url) + broadcastToml({ flushIntervalMs: 50, destinations: dests }));
        stack.key = await createKey(dataDir, { name: KEY_NAME });
        stack.beacon = await startBeacon({ config, dataDir, env });
        stack.api = `${stack.beacon.baseUrl}/api/v1`;
        return stack;
    } catch (err) {
        await stopStack(stack);
        throw err;
    }
}

async function stopStack(stack) {
    if (stack?.beacon) await stack.beacon.stop();
    for (const lf of stack?.langfuses ?? []) await lf.close();
    if (stack?.upstream) await stack.upstream.close();
    if (stack?.dir) await removeDir(stack.dir);
}

function resetStack(stack) {
    stack.upstream.reset();
    for (const lf of stack.langfuses) lf.reset();
}

function chat(stack, body, { key = stack.key, headers } = {}) {
    return postJson(`${stack.api}/chat/completions`, body, { key, headers });
}

/** Sends a stream request and reads it to the end; returns {status, genId, chunks}. */
async function chatStream(stack, body) {
    const res = await fetch(`${stack.api}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.key}` },
        body: JSON.stringify({ ...body, stream: true }),
    });
    const genId = res.headers.get('x-generation-id');
    const events = await collectSse(res.body);
    return { status: res.status, genId, chunks: events.filter((e) => e.json !== undefined).map((e) => e.json) };
}

function withStderr(stack, err) {
    err.message += `\n--- beacon stderr (tail) ---\n${stack.beacon.stderr.slice(-3000)}`;
    return err;
}

async function waitObs(stack, lf, n, timeoutMs = 10_000) {
    try {
        return await lf.waitForObservations(n, { timeoutMs });
    } catch (err) {
        throw withStderr(stack, err);
    }
}

/** Waits until the observation with this id was accepted (used as a "flushed so far" marker). */
async function waitForId(stack, lf, id, timeoutMs = 10_000) {
    try {
        await lf.waitFor(() => lf.spans.some((s) => s.id === id), { timeoutMs, what: `observation ${id}` });
    } catch (err) {
        throw withStderr(stack, err);
    }
}

function countById(lf, id) {
    return lf.spans.filter((s) => s.id === id).length;
}

describe('broadcast to Langfuse over OTLP', { timeout: 120_000 }, () => {
    let stack;
    before(async () => {
        stack = await startStack();
    });
    after(async () => {
        await stopStack(stack);
    });
    beforeEach(() => resetStack(stack));

    test('the seed request sent with the official openai SDK appears as trace > span > generation', async () => {
        stack.upstream.enqueue({ json: chatCompletion({ content: 'A short summary.', usage: USAGE }) });
        const client = new OpenAI({ baseURL: stack.api, apiKey: stack.key, maxRetries: 0 });
        // user, session_id and trace are not in the SDK's types; v6 sends unknown params as is.
        const { data, response } = await client.chat.completions.create(SEED).withResponse();
        const genId = data.id;
        assert.equal(response.headers.get('x-generation-id'), genId);
        const [up] = await stack.upstream.waitForRequests(1);
        assert.ok(!('trace' in up.body), 'trace must not be forwarded upstream');

        const view = await waitObs(stack, stack.langfuse, 2);
        const traceId = langfuseTraceId('workflow_12345');
        assert.equal(traceId.length, 32);
        assert.equal(view.traces.length, 1, JSON.stringify(view.traces));
        const [t] = view.traces;
        assert.equal(t.id, traceId);
        assert.equal(t.name, 'Document Processing Pipeline');
        assert.equal(t.userId, 'user_12345');
        assert.equal(t.sessionId, 'session_abc');
        assert.equal(t.environment, 'production');
        assert.equal(t.metadata.pipeline_version, '2.1.0');

        assert.equal(view.observations.length, 2);
        const span = view.observations.find((o) => o.type === 'SPAN');
        const gen = view.observations.find((o) => o.type === 'GENERATION');
        assert.ok(span && gen, `one span and one generation expected: ${JSON.stringify(view.observations.map((o) => o.type))}`);
        assert.equal(span.id, spanObservationId(genId));
        assert.equal(span.name, 'Summarization Step');
        assert.equal(span.traceId, traceId);
        assert.equal(span.parentObservationId, null);
        assert.equal(gen.id, generationObservationId(genId));
        assert.equal(gen.name, 'Generate Summary');
        assert.equal(gen.traceId, traceId);
        assert.equal(gen.parentObservationId, span.id);
        assert.equal(gen.model, MODEL);
        assert.deepEqual(gen.input, SEED.messages);
        assert.deepEqual(gen.output, { role: 'assistant', content: 'A short summary.' });
        assert.deepEqual(gen.usageDetails, { input: 120, input_cached_tokens: 0, output: 30, output_reasoning_tokens: 0, total: 150 });
        assertClose(gen.costDetails.input, 120 * PRICES.prompt, 'costDetails.input');
        assertClose(gen.costDetails.output, 30 * PRICES.completion, 'costDetails.output');
        assertClose(gen.costDetails.total, 120 * PRICES.prompt + 30 * PRICES.completion, 'costDetails.total');
        assertClose(gen.costDetails.total, data.usage.cost, 'costDetails.total vs the usage.cost the client got');
        for (const o of [span, gen]) {
            assert.equal(o.environment, 'production');
            assert.equal(o.userId, 'user_12345');
            assert.equal(o.sessionId, 'session_abc');
        }
        assert.equal(gen.metadata.generation_id, genId);
        assert.equal(gen.metadata.provider, 'FakeAI');
        assert.equal(gen.metadata.api_key_name, KEY_NAME);
    });

    test('exports are gzipped OTLP/JSON with Basic auth and x-langfuse-ingestion-version 4', async () => {
        const res = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
        assert.equal(res.status, 200, res.text);
        await waitObs(stack, stack.langfuse, 1);
        const e = stack.langfuse.exports.find((x) => x.status === 200);
        assert.ok(e, stack.langfuse.describe());
        assert.equal(e.path, '/api/public/otel/v1/traces');
        assert.equal(e.headers.authorization, `Basic ${Buffer.from('pk-lf-test:sk-lf-test').toString('base64')}`);
        assert.equal(e.headers['x-langfuse-ingestion-version'], '4');
        assert.match(e.headers['content-type'], /application\/json/);
        assert.equal(e.gzip, true, 'OTLP exports must be gzipped');
        for (const x of stack.langfuse.exports) assert.equal(x.status, 200, stack.langfuse.describe());
    });

    test('requests refused before authentication produce no trace', async () => {
        const marker = { model: MODEL, messages: [{ role: 'user', content: 'x' }], trace: { trace_name: 'must-not-exist' } };
        const bad = await chat(stack, marker, { key: 'sk-or-v1-not-a-real-key' });
        assert.equal(bad.status, 401);
        const none = await chat(stack, marker, { key: null });
        assert.equal(none.status, 401);
        // A good request afterwards: once its trace arrived, anything queued before it has too.
        const good = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: 'y' }], trace: { trace_name: 'sentinel' } });
        assert.equal(good.status, 200, good.text);
        await waitForId(stack, stack.langfuse, generationObservationId(good.body.id));
        const view = stack.langfuse.view();
        assert.deepEqual(view.traces.map((t) => t.name), ['sentinel']);
        assert.equal(view.observations.length, 1);
        assert.ok(!stack.langfuse.rawBodies.join('').includes('must-not-exist'));
    });

    test('a slow Langfuse does not slow the requests', async () => {
        stack.langfuse.setDelay(3000);
        const genIds = [];
        for (let i = 0; i < 3; i++) {
            const t0 = performance.now();
            const res = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: `slow ${i}` }] });
            const ms = performance.now() - t0;
            assert.equal(res.status, 200, res.text);
            assert.ok(ms < 1000, `request ${i} took ${ms.toFixed(0)} ms with Langfuse answering after 3 s`);
            genIds.push(res.body.id);
        }
        const t0 = performance.now();
        const s = await chatStream(stack, { model: MODEL, messages: [{ role: 'user', content: 'slow stream' }] });
        const ms = performance.now() - t0;
        assert.equal(s.status, 200);
        assert.ok(ms < 1000, `the stream took ${ms.toFixed(0)} ms`);
        genIds.push(s.genId);
        // Everything still arrives, each once.
        for (const g of genIds) await waitForId(stack, stack.langfuse, generationObservationId(g), 30_000);
        for (const g of genIds) assert.equal(countById(stack.langfuse, generationObservationId(g)), 1);
    });
});

describe('broadcast retries', { timeout: 120_000 }, () => {
    let stack;
    before(async () => {
        stack = await startStack();
    });
    after(async () => {
        await stopStack(stack);
    });
    beforeEach(() => resetStack(stack));

    test('503, 503 then 429 with Retry-After: 1: every observation arrives exactly once, and the 429 is honoured', async () => {
        const lf = stack.langfuse;
        lf.failNext(2, { status: 503 });
        lf.failNext(1, { status: 429, headers: { 'Retry-After': '1' }, body: { message: 'rate limited' } });
        const genIds = [];
        for (let i = 0; i < 10; i++) {
            const res = await chat(stack, {
                model: MODEL, messages: [{ role: 'user', content: `retry ${i}` }], trace: { trace_id: 'retry-test', span_name: `step ${i}` },
            });
            assert.equal(res.status, 200, res.text);
            genIds.push(res.body.id);
        }
        const expected = genIds.flatMap((g) => [generationObservationId(g), spanObservationId(g)]);
        for (const id of expected) await waitForId(stack, lf, id, 30_000);
        // A last request: once it arrived, any resend queued before it has arrived too.
        const sentinel = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: 'sentinel' }] });
        await waitForId(stack, lf, generationObservationId(sentinel.body.id), 30_000);

        for (const id of expected) assert.equal(countById(lf, id), 1, `observation ${id} arrived ${countById(lf, id)} times\n${lf.describe()}`);
        const known = new Set([...expected, generationObservationId(sentinel.body.id)]);
        const unknown = lf.spans.filter((s) => !known.has(s.id));
        assert.deepEqual(unknown.map((s) => s.id), [], 'only the expected observations arrive');

        const statuses = lf.exports.map((e) => e.status);
        assert.deepEqual(statuses.slice(0, 3), [503, 503, 429], lf.describe());
        // Retries resend identical ids: every span of a refused export arrives later.
        for (const [i, e] of lf.exports.entries()) {
            if (e.status === 200) continue;
            const refused = JSON.parse(lf.rawBodies[i]).resourceSpans
                .flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((sp) => sp.spanId)));
            for (const id of refused) assert.ok(known.has(id) && countById(lf, id) === 1, `span ${id} of refused export #${e.seq} was not resent as is`);
        }
        const e429 = lf.exports.find((e) => e.status === 429);
        const next = lf.exports.find((e) => e.at > e429.answeredAt);
        assert.ok(next, 'an export must follow the 429');
        const gap = next.at - e429.answeredAt;
        assert.ok(gap >= 1000, `the next export came ${gap.toFixed(0)} ms after the 429 with Retry-After: 1`);
    });

    test('dropped connections are retried and nothing is lost or doubled', async () => {
        const lf = stack.langfuse;
        lf.dropConnections(2);
        const genIds = [];
        for (let i = 0; i < 3; i++) {
            const res = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: `drop ${i}` }] });
            assert.equal(res.status, 200, res.text);
            genIds.push(res.body.id);
        }
        for (const g of genIds) await waitForId(stack, lf, generationObservationId(g), 30_000);
        const sentinel = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: 'sentinel' }] });
        await waitForId(stack, lf, generationObservationId(sentinel.body.id), 30_000);
        for (const g of genIds) assert.equal(countById(lf, generationObservationId(g)), 1, lf.describe());
        assert.equal(lf.exports.filter((e) => e.dropped).length, 2);
    });
});

describe('Privacy Mode with two destinations', { timeout: 120_000 }, () => {
    let stack;
    let priv;
    let normal;
    before(async () => {
        stack = await startStack({
            destinations: [
                { name: 'private-langfuse', privacyMode: true, transport: 'otlp', secretKeyEnv: 'BEACON_TEST_LANGFUSE_SK_PRIVATE' },
                { name: 'normal-langfuse', privacyMode: false, transport: 'otlp' },
            ],
        });
        [priv, normal] = stack.langfuses;
    });
    after(async () => {
        await stopStack(stack);
    });
    beforeEach(() => resetStack(stack));

    test('a string planted in prompts and answers reaches no byte of the private destination, and reaches the other', async () => {
        const canary = `CANARY-${randomBytes(12).toString('hex')}`;
        const trace = { trace_id: `privacy-${canary.slice(-6)}`, span_name: 'Step', team: 'search' };
        stack.upstream.enqueue(
            { json: chatCompletion({ content: `Here is the secret: ${canary}`, usage: USAGE }) },
            { stream: { chunks: [{ content: 'Streamed ' }, { content: canary }, { content: ' end', finish_reason: 'stop' }], usage: USAGE } },
            { status: 500, text: `upstream exploded while handling ${canary}` },
        );
        const whole = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: `Remember ${canary}` }], user: 'u-priv', trace });
        assert.equal(whole.status, 200, whole.text);
        assert.match(whole.body.choices[0].message.content, new RegExp(canary));
        const streamed = await chatStream(stack, { model: MODEL, messages: [{ role: 'user', content: `Stream ${canary}` }], trace });
        assert.equal(streamed.status, 200);
        const failed = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: `Fail ${canary}` }], trace });
        assert.equal(failed.status, 502, failed.text);

        const genIds = [whole.body.id, streamed.genId, failed.headers.get('x-generation-id')];
        for (const lf of [priv, normal]) {
            for (const g of genIds) await waitForId(stack, lf, generationObservationId(g));
        }
        for (const lf of [priv, normal]) {
            for (const e of lf.exports) assert.equal(e.status, 200, `every export must be accepted (else its bytes were not decoded):\n${lf.describe()}`);
        }

        const privateBytes = priv.rawBodies.join('\n');
        assert.ok(privateBytes.length > 0);
        assert.ok(!privateBytes.includes(canary), 'the planted string reached the private destination');
        assert.ok(!JSON.stringify(priv.exports.map((e) => e.headers)).includes(canary), 'the planted string is in a header');
        assert.ok(!privateBytes.includes('upstream exploded'), 'upstream error text reached the private destination');
        assert.ok(normal.rawBodies.join('\n').includes(canary), 'the normal destination gets the content');

        const pv = priv.view();
        const gens = genIds.map((g) => pv.observations.find((o) => o.id === generationObservationId(g)));
        for (const [i, o] of gens.entries()) {
            assert.ok(o, `generation ${i} missing at the private destination`);
            assert.equal(o.input, null);
            assert.equal(o.output, null);
            assert.equal(o.model, MODEL);
        }
        for (const o of gens.slice(0, 2)) {
            assert.deepEqual(o.usageDetails, { input: 120, input_cached_tokens: 0, output: 30, output_reasoning_tokens: 0, total: 150 });
            assertClose(o.costDetails.total, 120 * PRICES.prompt + 30 * PRICES.completion, 'costDetails.total');
        }
        assert.equal(gens[1].completionStartTime !== null, true, 'stream timing is kept');
        assert.equal(gens[2].level, 'ERROR');
        assert.match(gens[2].statusMessage ?? '', /^[a-z_]+ \(\d{3}\)$/, 'a private error message is only "<type> (<status>)"');
        const t = pv.traces.find((x) => x.id === langfuseTraceId(trace.trace_id));
        assert.ok(t, 'the trace exists at the private destination');
        assert.equal(t.metadata.team, 'search', 'trace metadata is still sent');
        assert.equal(t.userId, 'u-priv');

        const nv = normal.view();
        const normalGen = nv.observations.find((o) => o.id === generationObservationId(genIds[0]));
        assert.deepEqual(normalGen.input, [{ role: 'user', content: `Remember ${canary}` }]);
    });
});

describe('broadcast over the legacy ingestion API', { timeout: 120_000 }, () => {
    let stack;
    before(async () => {
        stack = await startStack({ destinations: [{ transport: 'ingestion' }] });
    });
    after(async () => {
        await stopStack(stack);
    });
    beforeEach(() => resetStack(stack));

    test('posts uncompressed batches to /api/public/ingestion', async () => {
        const res = await chat(stack, SEED);
        assert.equal(res.status, 200, res.text);
        await waitObs(stack, stack.langfuse, 2);
        for (const e of stack.langfuse.exports) {
            assert.equal(e.path, '/api/public/ingestion');
            assert.equal(e.gzip, false);
            assert.equal(e.status, 207, stack.langfuse.describe());
        }
        const v = stack.langfuse.view();
        assert.equal(v.traces.length, 1);
        assert.equal(v.traces[0].name, 'Document Processing Pipeline');
        assert.deepEqual(stack.langfuse.spans.map((s) => s.kind).sort(), ['generation-create', 'span-create', 'trace-create']);
    });

    test('an item answered 400 is dropped, an item answered 500 is retried alone and arrives once', async () => {
        const lf = stack.langfuse;
        lf.reject207Items((ev, { attempt }) => {
            if (ev.type !== 'generation-create') return undefined;
            if (ev.body.name === 'reject-me') return 400;
            if (ev.body.name === 'retry-me' && attempt === 1) return 500;
            return undefined;
        });
        const ids = {};
        for (const name of ['reject-me', 'retry-me', 'plain']) {
            const res = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: name }], trace: { generation_name: name } });
            assert.equal(res.status, 200, res.text);
            ids[name] = generationObservationId(res.body.id);
        }
        await waitForId(stack, lf, ids['retry-me'], 30_000);
        await waitForId(stack, lf, ids.plain, 30_000);
        const sentinel = await chat(stack, { model: MODEL, messages: [{ role: 'user', content: 'sentinel' }] });
        await waitForId(stack, lf, generationObservationId(sentinel.body.id), 30_000);

        const offers = (id) => lf.ingestionItems.filter((i) => i.bodyId === id && i.type === 'generation-create');
        assert.deepEqual(offers(ids['reject-me']).map((i) => i.status), [400], `the 400 item must be sent once and dropped\n${lf.describe()}`);
        assert.equal(countById(lf, ids['reject-me']), 0);
        assert.deepEqual(offers(ids['retry-me']).map((i) => i.status), [500, 201], 'the 500 item must be retried');
        assert.equal(countById(lf, ids['retry-me']), 1);
        assert.equal(countById(lf, ids.plain), 1);
        // Only the failed item is resent: every other event was offered exactly once.
        const byEvent = new Map();
        for (const i of lf.ingestionItems) byEvent.set(i.eventId, (byEvent.get(i.eventId) ?? 0) + 1);
        const retryEventId = offers(ids['retry-me'])[0].eventId;
        for (const [eventId, n] of byEvent) {
            if (eventId !== retryEventId) assert.equal(n, 1, `event ${eventId} was offered ${n} times`);
        }
        // The traces themselves were accepted, the rejected generation's included.
        assert.equal(lf.spans.filter((s) => s.kind === 'trace-create').length, 4);
    });
});
