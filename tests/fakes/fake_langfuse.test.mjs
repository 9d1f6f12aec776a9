// Verifies the strict fake Langfuse itself, with plain fetch, so that a failing broadcast test can
// be trusted to point at Beacon and not at its fake. Every rejection rule has a test that sends a
// bad payload and expects the documented status; accepted payloads must show up in the view as
// Langfuse would show them.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import {
    startFakeLangfuse, INVALID_CREDENTIALS, INGESTION_MAX_BYTES, ORGANIZATION_KEY_403, ORGANIZATION_KEY_401,
} from './fake_langfuse.mjs';
import { withTimeout } from '../integration/harness.mjs';

const PK = 'pk-lf-test';
const SK = 'sk-lf-test';
const TRACE_ID = '4f8e2c1a9b7d4e3f8a6b5c4d3e2f1a0b';
const SPAN_ID = 'b2c3d4e5f6a70819';
const PARENT_ID = 'a1b2c3d4e5f60718';

function basic(pk = PK, sk = SK) {
    return `Basic ${Buffer.from(`${pk}:${sk}`).toString('base64')}`;
}

// ---- OTLP builders ----

/** An OTLP attribute with the typed value JS would map to. */
function attr(key, value) {
    return { key, value: typed(value) };
}

function typed(value) {
    if (typeof value === 'string') return { stringValue: value };
    if (typeof value === 'boolean') return { boolValue: value };
    if (Number.isInteger(value)) return { intValue: String(value) };
    if (typeof value === 'number') return { doubleValue: value };
    if (Array.isArray(value)) return { arrayValue: { values: value.map(typed) } };
    throw new Error(`no OTLP type for ${value}`);
}

/** The langfuse.md 4.5 example generation, valid under the strict rules. */
function exampleGenerationSpan(overrides = {}) {
    return {
        traceId: TRACE_ID,
        spanId: SPAN_ID,
        name: 'LLM Generation',
        kind: 3,
        startTimeUnixNano: '1787393730020000000',
        endTimeUnixNano: '1787393731440000000',
        status: { code: 1 },
        attributes: [
            attr('langfuse.observation.type', 'generation'),
            attr('langfuse.trace.name', 'chat.completions'),
            attr('user.id', 'user_12345'),
            attr('session.id', 'session_abc'),
            attr('langfuse.trace.tags', ['gateway']),
            attr('langfuse.trace.metadata.gateway_request_id', 'gen-abc123'),
            attr('langfuse.environment', 'production'),
            attr('langfuse.observation.model.name', 'openai/gpt-4o'),
            attr('langfuse.observation.model.parameters', '{"temperature":0.7,"max_tokens":256,"stream":true}'),
            attr('langfuse.observation.input', '[{"role":"user","content":"Hello"}]'),
            attr('langfuse.observation.output', '{"role":"assistant","content":"Hi! How can I help?"}'),
            attr('langfuse.observation.usage_details', '{"input":200,"input_cached_tokens":1000,"output":50,"total":1250}'),
            attr('langfuse.observation.cost_details', '{"input":0.0005,"input_cached_tokens":0.00125,"output":0.0005,"total":0.00225}'),
            attr('langfuse.observation.completion_start_time', '2026-08-22T10:15:30.410Z'),
            attr('langfuse.observation.metadata.provider', 'openai'),
        ],
        ...overrides,
    };
}

function exampleResourceAttrs() {
    return [
        attr('service.name', 'my-gateway'),
        attr('langfuse.environment', 'production'),
        attr('langfuse.release', '1.4.0'),
    ];
}

function otlpPayload(spans, resourceAttributes = exampleResourceAttrs()) {
    return {
        resourceSpans: [{
            resource: { attributes: resourceAttributes },
            scopeSpans: [{ scope: { name: 'my-gateway', version: '0.1.0' }, spans }],
        }],
    };
}

/** Replaces (or with value undefined removes) one attribute of a span. */
function withAttr(span, key, value) {
    const attributes = span.attributes.filter((a) => a.key !== key);
    if (value === undefined) return { ...span, attributes };
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'value' in value) {
        // A raw OTLP value (or {value: undefined} for an attribute without value).
        attributes.push(value.value === undefined ? { key } : { key, value: value.value });
    } else {
        attributes.push(attr(key, value));
    }
    return { ...span, attributes };
}

async function postOtlp(fake, payload, { headers = {}, gzip = true, auth = basic(), raw } = {}) {
    const text = raw ?? JSON.stringify(payload);
    const body = gzip ? gzipSync(Buffer.from(text)) : text;
    const h = {
        'content-type': 'application/json',
        'x-langfuse-ingestion-version': '4',
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
        ...(auth ? { authorization: auth } : {}),
        ...headers,
    };
    for (const [k, v] of Object.entries(h)) if (v === undefined) delete h[k];
    const res = await fetch(`${fake.url}/api/public/otel/v1/traces`, { method: 'POST', headers: h, body });
    const t = await res.text();
    let json = null;
    try {
        json = JSON.parse(t);
    } catch { /* left null */ }
    return { status: res.status, body: json, text: t, headers: res.headers };
}

async function expectOtlp400(fake, payload, mention, opts) {
    const r = await postOtlp(fake, payload, opts);
    assert.equal(r.status, 400, `expected 400, got ${r.status}: ${r.text}`);
    assert.equal(typeof r.body?.error, 'string', r.text);
    if (mention) assert.match(r.body.error, mention);
    assert.equal(fake.spans.length, 0, 'nothing may be recorded from a rejected export');
    return r;
}

// ---- legacy builders (langfuse.md 2.8, verbatim) ----

function exampleBatch() {
    return {
        batch: [
            {
                id: '0b5d7f3e-8a4c-4d0e-9a61-2f1c3b9e7a10',
                type: 'trace-create',
                timestamp: '2026-08-22T10:15:31.480Z',
                body: {
                    id: TRACE_ID,
                    timestamp: '2026-08-22T10:15:30.000Z',
                    name: 'chat.completions',
                    userId: 'user_12345',
                    sessionId: 'session_abc',
                    input: { messages: [{ role: 'user', content: 'Hello' }] },
                    output: { role: 'assistant', content: 'Hi! How can I help?' },
                    metadata: { gateway_request_id: 'gen-abc123', provider: 'openai' },
                    tags: ['gateway'],
                    release: '1.4.0',
                    version: '1.4.0',
                    environment: 'production',
                    public: false,
                },
            },
            {
                id: '7c1e4b2a-3d5f-4a6b-8c9d-0e1f2a3b4c5d',
                type: 'span-create',
                timestamp: '2026-08-22T10:15:31.481Z',
                body: {
                    id: PARENT_ID,
                    traceId: TRACE_ID,
                    name: 'gateway.request',
                    startTime: '2026-08-22T10:15:30.000Z',
                    endTime: '2026-08-22T10:15:31.450Z',
                    input: { model: 'openai/gpt-4o', stream: true },
                    output: { status: 200, provider: 'openai' },
                    metadata: { route: '/api/v1/chat/completions' },
                    level: 'DEFAULT',
                    environment: 'production',
                },
            },
            {
                id: 'e3f4a5b6-c7d8-4e9f-a0b1-c2d3e4f5a6b7',
                type: 'generation-create',
                timestamp: '2026-08-22T10:15:31.482Z',
                body: {
                    id: SPAN_ID,
                    traceId: TRACE_ID,
                    parentObservationId: PARENT_ID,
                    name: 'LLM Generation',
                    startTime: '2026-08-22T10:15:30.020Z',
                    completionStartTime: '2026-08-22T10:15:30.410Z',
                    endTime: '2026-08-22T10:15:31.440Z',
                    model: 'openai/gpt-4o',
                    modelParameters: { temperature: 0.7, max_tokens: 256, stream: true },
                    input: [{ role: 'user', content: 'Hello' }],
                    output: { role: 'assistant', content: 'Hi! How can I help?' },
                    usageDetails: { input: 200, input_cached_tokens: 1000, output: 50, output_reasoning_tokens: 0, total: 1250 },
                    costDetails: { input: 0.0005, input_cached_tokens: 0.00125, output: 0.0005, total: 0.00225 },
                    level: 'DEFAULT',
                    metadata: { provider: 'openai', finish_reason: 'stop' },
                    environment: 'production',
                },
            },
        ],
        metadata: { batch_size: 3, sdk_name: 'my-gateway', sdk_version: '0.1.0', public_key: 'pk-lf-...' },
    };
}

async function postIngestion(fake, payload, { headers = {}, auth = basic(), raw } = {}) {
    const h = { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}), ...headers };
    const res = await fetch(`${fake.url}/api/public/ingestion`, {
        method: 'POST', headers: h, body: raw ?? JSON.stringify(payload),
    });
    const t = await res.text();
    let json = null;
    try {
        json = JSON.parse(t);
    } catch { /* left null */ }
    return { status: res.status, body: json, text: t, headers: res.headers };
}

describe('fake Langfuse', { timeout: 60_000 }, () => {
    let fake;
    before(async () => {
        fake = await startFakeLangfuse();
    });
    after(async () => {
        await fake.close();
    });
    beforeEach(() => fake.reset());

    describe('side endpoints', () => {
        test('health needs no auth and reports the version', async () => {
            const res = await fetch(`${fake.url}/api/public/health`);
            assert.equal(res.status, 200);
            assert.deepEqual(await res.json(), { status: 'OK', version: '3.120.0' });
        });

        test('projects lists the project with Basic auth', async () => {
            const res = await fetch(`${fake.url}/api/public/projects`, { headers: { authorization: basic() } });
            assert.equal(res.status, 200);
            assert.deepEqual(await res.json(), {
                data: [{ id: 'proj_1', name: 'Test Project', organization: { id: 'org_1', name: 'Org' }, metadata: {} }],
            });
        });

        test('projects refuses bad keys and a missing header with 401', async () => {
            const bad = await fetch(`${fake.url}/api/public/projects`, { headers: { authorization: basic(PK, 'sk-lf-wrong') } });
            assert.equal(bad.status, 401);
            assert.deepEqual(await bad.json(), { message: INVALID_CREDENTIALS });
            const bearer = await fetch(`${fake.url}/api/public/projects`, { headers: { authorization: `Bearer ${PK}` } });
            assert.equal(bearer.status, 401);
            await bearer.body.cancel();
            const none = await fetch(`${fake.url}/api/public/projects`);
            assert.equal(none.status, 401);
            await none.body.cancel();
        });

        test('unknown paths answer a Next.js-like 404 HTML page', async () => {
            const res = await fetch(`${fake.url}/api/public/otel/v1/logs`, { method: 'POST', body: '{}' });
            assert.equal(res.status, 404);
            assert.match(res.headers.get('content-type'), /^text\/html/);
            assert.match(await res.text(), /404/);
        });

        test('GET on the export paths is 405 and is not counted as an export', async () => {
            const res = await fetch(`${fake.url}/api/public/otel/v1/traces`, { headers: { authorization: basic() } });
            assert.equal(res.status, 405);
            await res.body.cancel();
            assert.equal(fake.exports.length, 0);
        });
    });

    describe('OTLP: transport checks', () => {
        test('the langfuse.md 4.5 example (gzip, Basic auth, version 4) is accepted with 200 {}', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.equal(r.status, 200, r.text);
            assert.deepEqual(r.body, {});
            assert.equal(fake.spans.length, 1);
            assert.equal(fake.exports.length, 1);
            const e = fake.exports[0];
            assert.equal(e.status, 200);
            assert.equal(e.gzip, true);
            assert.equal(e.path, '/api/public/otel/v1/traces');
            assert.ok(e.bodyBytes > 0 && e.decodedBytes > e.bodyBytes, 'decoded size is the inflated size');
            assert.equal(e.headers['x-langfuse-ingestion-version'], '4');
            assert.equal(typeof e.at, 'number');
            assert.ok(e.answeredAt >= e.at);
            assert.match(fake.rawBodies[0], /Hi! How can I help\?/, 'rawBodies hold the gunzipped text');
        });

        test('an uncompressed JSON export is accepted too', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { gzip: false });
            assert.equal(r.status, 200, r.text);
            assert.equal(fake.exports[0].gzip, false);
        });

        test('a wrong secret key is 401 with the real message', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { auth: basic(PK, 'nope') });
            assert.equal(r.status, 401);
            assert.deepEqual(r.body, { message: INVALID_CREDENTIALS });
            assert.equal(fake.spans.length, 0);
            assert.equal(fake.exports[0].status, 401);
        });

        test('a missing Authorization header is 401', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { auth: null });
            assert.equal(r.status, 401);
        });

        test('a non-JSON content type is 400 "Invalid content type"', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { headers: { 'content-type': 'text/plain' } });
            assert.equal(r.status, 400);
            assert.deepEqual(r.body, { error: 'Invalid content type' });
        });

        test('protobuf is refused too (Beacon only sends JSON)', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { headers: { 'content-type': 'application/x-protobuf' } });
            assert.equal(r.status, 400);
            assert.deepEqual(r.body, { error: 'Invalid content type' });
        });

        test('application/json with a charset is fine', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { headers: { 'content-type': 'application/json; charset=utf-8' } });
            assert.equal(r.status, 200, r.text);
        });

        test('Content-Encoding gzip on a body that is not gzip is 400', async () => {
            const res = await fetch(`${fake.url}/api/public/otel/v1/traces`, {
                method: 'POST',
                headers: {
                    'content-type': 'application/json', 'content-encoding': 'gzip',
                    'x-langfuse-ingestion-version': '4', authorization: basic(),
                },
                body: JSON.stringify(otlpPayload([exampleGenerationSpan()])),
            });
            assert.equal(res.status, 400);
            assert.match((await res.json()).error, /gzip/i);
            assert.equal(fake.spans.length, 0);
        });

        for (const bad of ['5', 'abc', '4.0']) {
            test(`x-langfuse-ingestion-version "${bad}" is 400`, async () => {
                await expectOtlp400(fake, otlpPayload([exampleGenerationSpan()]), /ingestion-version/,
                    { headers: { 'x-langfuse-ingestion-version': bad } });
            });
        }

        test('a missing x-langfuse-ingestion-version is 400 (Beacon must send it)', async () => {
            await expectOtlp400(fake, otlpPayload([exampleGenerationSpan()]), /ingestion-version: 4 is required/,
                { headers: { 'x-langfuse-ingestion-version': undefined } });
        });

        test('with requireIngestionVersion false, a missing or lower version is accepted', async () => {
            const lax = await startFakeLangfuse({ requireIngestionVersion: false });
            try {
                const a = await postOtlp(lax, otlpPayload([exampleGenerationSpan()]), { headers: { 'x-langfuse-ingestion-version': undefined } });
                assert.equal(a.status, 200, a.text);
                const b = await postOtlp(lax, otlpPayload([exampleGenerationSpan()]), { headers: { 'x-langfuse-ingestion-version': '3' } });
                assert.equal(b.status, 200, b.text);
                const c = await postOtlp(lax, otlpPayload([exampleGenerationSpan()]), { headers: { 'x-langfuse-ingestion-version': '7' } });
                assert.equal(c.status, 400, 'a version above 4 is refused even then');
            } finally {
                await lax.close();
            }
        });

        test('a body that is not JSON is 400', async () => {
            await expectOtlp400(fake, null, /Invalid JSON/, { raw: '{"resourceSpans": [' });
        });

        test('an empty resourceSpans array is accepted and records nothing', async () => {
            const r = await postOtlp(fake, { resourceSpans: [] });
            assert.equal(r.status, 200, r.text);
            assert.equal(fake.spans.length, 0);
        });
    });

    describe('OTLP: structure rules', () => {
        const g = exampleGenerationSpan;
        const cases = [
            ['resourceSpans missing', { foo: [] }, /resourceSpans/],
            ['resource without attributes', { resourceSpans: [{ resource: {}, scopeSpans: [] }] }, /resource\.attributes/],
            ['resource missing', { resourceSpans: [{ scopeSpans: [] }] }, /resource/],
            ['scopeSpans not an array', { resourceSpans: [{ resource: { attributes: [] }, scopeSpans: {} }] }, /scopeSpans/],
            ['spans not an array', { resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ spans: null }] }] }, /spans/],
            ['traceId in uppercase', otlpPayload([g({ traceId: TRACE_ID.toUpperCase() })]), /traceId/],
            ['traceId of 30 chars', otlpPayload([g({ traceId: TRACE_ID.slice(2) })]), /traceId/],
            ['traceId in base64', otlpPayload([g({ traceId: 'T44sGpt9Tj+KaxxNPi8aCw==' })]), /traceId/],
            ['traceId missing', otlpPayload([g({ traceId: undefined })]), /traceId/],
            ['spanId of 32 chars', otlpPayload([g({ spanId: TRACE_ID })]), /spanId/],
            ['spanId all zero', otlpPayload([g({ spanId: '0000000000000000' })]), /spanId/],
            ['parentSpanId not hex', otlpPayload([g({ parentSpanId: 'my-parent-step!!' })]), /parentSpanId/],
            ['parentSpanId equal to spanId', otlpPayload([g({ parentSpanId: SPAN_ID })]), /parentSpanId/],
            ['name missing', otlpPayload([g({ name: undefined })]), /name/],
            ['name not a string', otlpPayload([g({ name: 42 })]), /name/],
            ['startTimeUnixNano as a number', otlpPayload([g({ startTimeUnixNano: 1787393730020000000 })]), /startTimeUnixNano.*string/],
            ['endTimeUnixNano missing', otlpPayload([g({ endTimeUnixNano: undefined })]), /endTimeUnixNano/],
            ['times in milliseconds', otlpPayload([g({ startTimeUnixNano: '1787393730020', endTimeUnixNano: '1787393731440' })]), /nanoseconds/],
            ['start after end', otlpPayload([g({ startTimeUnixNano: '1787393731440000001' })]), /after/],
            ['status.code as a string', otlpPayload([g({ status: { code: 'STATUS_CODE_ERROR' } })]), /status\.code/],
            ['status.code 3', otlpPayload([g({ status: { code: 3 } })]), /status\.code/],
            ['status not an object', otlpPayload([g({ status: 2 })]), /status/],
            ['kind as a string', otlpPayload([g({ kind: 'SPAN_KIND_CLIENT' })]), /kind/],
            ['attributes as a map', otlpPayload([g({ attributes: { 'langfuse.observation.type': 'generation' } })]), /attributes must be an array/],
            ['attributes missing', otlpPayload([g({ attributes: undefined })]), /attributes/],
            ['an unknown span field (typo)', otlpPayload([g({ parentSpanID: PARENT_ID })]), /unknown span field/],
            ['events not an array', otlpPayload([g({ events: {} })]), /events/],
        ];
        for (const [name, payload, mention] of cases) {
            test(`${name} is 400`, async () => {
                await expectOtlp400(fake, payload, mention);
            });
        }

        test('one bad span rejects the whole export (the good one is not recorded)', async () => {
            await expectOtlp400(fake, otlpPayload([g(), g({ spanId: 'zz' })]), /spans\[1\]/);
        });
    });

    describe('OTLP: attribute rules', () => {
        const g = exampleGenerationSpan;
        const cases = [
            ['an attribute without value', withAttr(g(), 'x.y', { value: undefined }), null],
            ['a value with two typed fields', withAttr(g(), 'x.y', { value: { stringValue: 'a', intValue: '1' } }), /exactly one typed field/],
            ['an empty value object', withAttr(g(), 'x.y', { value: {} }), /exactly one typed field/],
            ['a kvlistValue', withAttr(g(), 'x.y', { value: { kvlistValue: { values: [] } } }), /kvlistValue/],
            ['a bytesValue', withAttr(g(), 'x.y', { value: { bytesValue: 'AAE=' } }), /bytesValue/],
            ['intValue "12a"', withAttr(g(), 'x.y', { value: { intValue: '12a' } }), /intValue/],
            ['intValue 1.5', withAttr(g(), 'x.y', { value: { intValue: 1.5 } }), /intValue/],
            ['stringValue that is a number', withAttr(g(), 'x.y', { value: { stringValue: 3 } }), /stringValue/],
            ['boolValue "true"', withAttr(g(), 'x.y', { value: { boolValue: 'true' } }), /boolValue/],
            ['doubleValue as a string', withAttr(g(), 'x.y', { value: { doubleValue: '0.5' } }), /doubleValue/],
            ['arrayValue with an untyped item', withAttr(g(), 'x.y', { value: { arrayValue: { values: ['a'] } } }), /arrayValue\.values\[0\]/],
            ['a key that is not a string', { ...g(), attributes: [...g().attributes, { key: 5, value: { stringValue: 'x' } }] }, /key/],
            ['a duplicate key', { ...g(), attributes: [...g().attributes, attr('user.id', 'other')] }, /duplicate/],
            ['a __proto__ key segment', withAttr(g(), 'langfuse.trace.metadata.__proto__', 'x'), /__proto__/],
            ['completion_start_time without Z', withAttr(g(), 'langfuse.observation.completion_start_time', '2026-08-22T10:15:30.410'), /completion_start_time/],
            ['completion_start_time without T', withAttr(g(), 'langfuse.observation.completion_start_time', '2026-08-22 10:15:30.410Z'), /completion_start_time/],
            ['completion_start_time as ns', withAttr(g(), 'langfuse.observation.completion_start_time', { value: { intValue: '1787393730410000000' } }), /completion_start_time/],
            ['input that is not JSON', withAttr(g(), 'langfuse.observation.input', 'Hello there'), /input is not valid JSON/],
            ['output that is not JSON', withAttr(g(), 'langfuse.observation.output', '{"role":'), /output is not valid JSON/],
            ['model.parameters that is not an object', withAttr(g(), 'langfuse.observation.model.parameters', '[1,2]'), /model\.parameters/],
            ['model.parameters with a nested object of numbers', withAttr(g(), 'langfuse.observation.model.parameters', '{"x":{"a":1}}'), /modelParameters\.x/],
            ['metadata as a JSON array', withAttr(g(), 'langfuse.observation.metadata', '[1]'), /metadata/],
            ['input as an arrayValue', withAttr(g(), 'langfuse.observation.input', ['a']), /input must be a stringValue/],
            ['usage_details without total', withAttr(g(), 'langfuse.observation.usage_details', '{"input":1,"output":2}'), /total/],
            ['usage_details with a negative value', withAttr(g(), 'langfuse.observation.usage_details', '{"input":-1,"total":1}'), /non-negative integer/],
            ['usage_details with a float', withAttr(g(), 'langfuse.observation.usage_details', '{"input":1.5,"total":2}'), /non-negative integer/],
            ['usage_details with a string value', withAttr(g(), 'langfuse.observation.usage_details', '{"input":"1","total":1}'), /non-negative integer/],
            ['cost_details without total', withAttr(g(), 'langfuse.observation.cost_details', '{"input":0.1}'), /total/],
            ['cost_details with a negative value', withAttr(g(), 'langfuse.observation.cost_details', '{"input":-0.1,"total":0}'), /non-negative number/],
            ['usage_details on a span', withAttr(g(), 'langfuse.observation.type', 'span'), /only belong on generation/],
            ['cost_details without an observation type', withAttr(withAttr(g(), 'langfuse.observation.type', undefined), 'langfuse.observation.usage_details', undefined), /only belong on generation/],
            ['an unknown observation type', withAttr(g(), 'langfuse.observation.type', 'llm'), /observation\.type/],
            ['level "INFO"', withAttr(g(), 'langfuse.observation.level', 'INFO'), /level/],
            ['span environment with a space', withAttr(g(), 'langfuse.environment', 'prod env'), /environment/],
            ['span environment in uppercase', withAttr(g(), 'langfuse.environment', 'Production'), /environment/],
            ['span environment starting with langfuse', withAttr(g(), 'langfuse.environment', 'langfuse-prod'), /environment/],
            ['span environment of 41 chars', withAttr(g(), 'langfuse.environment', 'e'.repeat(41)), /environment/],
            ['span environment empty', withAttr(g(), 'langfuse.environment', ''), /environment/],
            ['tags as a JSON string', withAttr(g(), 'langfuse.trace.tags', '["a"]'), /tags/],
            ['tags with a number', withAttr(g(), 'langfuse.trace.tags', { value: { arrayValue: { values: [{ intValue: '1' }] } } }), /tags/],
            ['user.id as an int', withAttr(g(), 'user.id', 12345), /user\.id/],
            ['prompt.name without version', withAttr(g(), 'langfuse.observation.prompt.name', 'p'), /prompt/],
        ];
        for (const [name, span, mention] of cases) {
            test(`${name} is 400`, async () => {
                await expectOtlp400(fake, otlpPayload([span]), mention);
            });
        }

        test('a resource environment that is invalid is 400', async () => {
            const resource = [attr('service.name', 'x'), attr('langfuse.environment', 'Prod!')];
            await expectOtlp400(fake, otlpPayload([exampleGenerationSpan()], resource), /resource\.attributes.*environment/);
        });

        test('a resource deployment.environment that is invalid is 400', async () => {
            const resource = [attr('deployment.environment', 'langfuse')];
            await expectOtlp400(fake, otlpPayload([exampleGenerationSpan()], resource), /environment/);
        });

        test('intValue as a number and as a digit string are both accepted', async () => {
            const span = withAttr(withAttr(exampleGenerationSpan(), 'langfuse.observation.metadata.n1', { value: { intValue: 7 } }),
                'langfuse.observation.metadata.n2', { value: { intValue: '-8' } });
            const r = await postOtlp(fake, otlpPayload([span]));
            assert.equal(r.status, 200, r.text);
            const [o] = fake.view().observations;
            assert.equal(o.metadata.n1, 7);
            assert.equal(o.metadata.n2, -8);
        });

        test('an empty arrayValue is accepted', async () => {
            const span = withAttr(exampleGenerationSpan(), 'langfuse.trace.tags', { value: { arrayValue: {} } });
            const r = await postOtlp(fake, otlpPayload([span]));
            assert.equal(r.status, 200, r.text);
            assert.deepEqual(fake.view().traces[0].tags, []);
        });
    });

    describe('OTLP: the view', () => {
        test('the 4.5 example shows as Langfuse would show it', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.equal(r.status, 200, r.text);
            const { traces, observations } = fake.view();
            assert.deepEqual(traces, [{
                id: TRACE_ID,
                name: 'chat.completions',
                userId: 'user_12345',
                sessionId: 'session_abc',
                environment: 'production',
                tags: ['gateway'],
                release: '1.4.0',
                version: null,
                metadata: { gateway_request_id: 'gen-abc123' },
                observationIds: [SPAN_ID],
            }]);
            assert.deepEqual(observations, [{
                id: SPAN_ID,
                traceId: TRACE_ID,
                type: 'GENERATION',
                name: 'LLM Generation',
                parentObservationId: null,
                startTime: '2026-08-22T10:15:30.020Z',
                endTime: '2026-08-22T10:15:31.440Z',
                completionStartTime: '2026-08-22T10:15:30.410Z',
                model: 'openai/gpt-4o',
                modelParameters: { temperature: 0.7, max_tokens: 256, stream: true },
                usageDetails: { input: 200, input_cached_tokens: 1000, output: 50, total: 1250 },
                costDetails: { input: 0.0005, input_cached_tokens: 0.00125, output: 0.0005, total: 0.00225 },
                level: 'DEFAULT',
                statusMessage: null,
                input: [{ role: 'user', content: 'Hello' }],
                output: { role: 'assistant', content: 'Hi! How can I help?' },
                metadata: { provider: 'openai' },
                environment: 'production',
                userId: 'user_12345',
                sessionId: 'session_abc',
            }]);
        });

        test('a span with a child generation: type, parent, trace merge (later wins, tags unioned)', async () => {
            const spanObs = {
                traceId: TRACE_ID,
                spanId: PARENT_ID,
                name: 'Summarization Step',
                startTimeUnixNano: '1787393730000000000',
                endTimeUnixNano: '1787393731450000000',
                attributes: [
                    attr('langfuse.observation.type', 'span'),
                    attr('langfuse.trace.name', 'First name'),
                    attr('langfuse.trace.tags', ['b', 'a']),
                    attr('langfuse.trace.metadata.k', 'v1'),
                    attr('langfuse.version', '9.9'),
                ],
            };
            const gen = exampleGenerationSpan({ parentSpanId: PARENT_ID });
            const genAttrs = withAttr(withAttr(gen, 'langfuse.trace.name', 'Final name'), 'langfuse.trace.tags', ['c', 'a']);
            const r = await postOtlp(fake, otlpPayload([spanObs, withAttr(genAttrs, 'langfuse.trace.metadata.k', 'v2')]));
            assert.equal(r.status, 200, r.text);
            const { traces, observations } = fake.view();
            assert.equal(traces.length, 1);
            assert.equal(traces[0].name, 'Final name');
            assert.deepEqual(traces[0].tags, ['a', 'b', 'c']);
            assert.deepEqual(traces[0].metadata, { k: 'v2', gateway_request_id: 'gen-abc123' });
            assert.equal(traces[0].version, '9.9');
            assert.deepEqual(traces[0].observationIds, [PARENT_ID, SPAN_ID]);
            assert.equal(observations[0].type, 'SPAN');
            assert.equal(observations[0].parentObservationId, null);
            assert.deepEqual(observations[0].usageDetails, {});
            assert.equal(observations[0].environment, 'production', 'from the resource');
            assert.equal(observations[1].parentObservationId, PARENT_ID);
        });

        test('defaults: no type is SPAN, status code 2 is ERROR with its message, no environment is "default", root span names the trace', async () => {
            const s = {
                traceId: TRACE_ID,
                spanId: PARENT_ID,
                name: 'root-span-name',
                startTimeUnixNano: '1787393730000000000',
                endTimeUnixNano: '1787393730000000000',
                status: { code: 2, message: 'upstream failed' },
                attributes: [attr('user.id', 'u1')],
            };
            const r = await postOtlp(fake, otlpPayload([s], [attr('service.name', 'x')]));
            assert.equal(r.status, 200, r.text);
            const { traces, observations } = fake.view();
            assert.equal(traces[0].name, 'root-span-name');
            assert.equal(traces[0].environment, 'default');
            assert.equal(traces[0].userId, 'u1');
            const [o] = observations;
            assert.equal(o.type, 'SPAN');
            assert.equal(o.level, 'ERROR');
            assert.equal(o.statusMessage, 'upstream failed');
            assert.equal(o.environment, 'default');
            assert.equal(o.completionStartTime, null);
            assert.equal(o.input, null);
            assert.equal(o.model, null);
        });

        test('explicit level and status_message win over status; resource deployment.environment is used', async () => {
            const s = withAttr(withAttr(exampleGenerationSpan({ status: { code: 2, message: 'raw' } }),
                'langfuse.observation.level', 'WARNING'), 'langfuse.observation.status_message', 'cancelled by client');
            const noEnv = withAttr(s, 'langfuse.environment', undefined);
            const r = await postOtlp(fake, otlpPayload([noEnv], [attr('deployment.environment', 'staging')]));
            assert.equal(r.status, 200, r.text);
            const [o] = fake.view().observations;
            assert.equal(o.level, 'WARNING');
            assert.equal(o.statusMessage, 'cancelled by client');
            assert.equal(o.environment, 'staging');
            assert.equal(fake.view().traces[0].environment, 'staging');
        });

        test('a child-only export (parent not sent) leaves the trace name to langfuse.trace.name', async () => {
            const child = withAttr(exampleGenerationSpan({ parentSpanId: PARENT_ID }), 'langfuse.trace.name', undefined);
            const r = await postOtlp(fake, otlpPayload([child]));
            assert.equal(r.status, 200, r.text);
            assert.equal(fake.view().traces[0].name, null);
        });

        test('resource service.version becomes the trace version when langfuse.version is absent', async () => {
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()], [...exampleResourceAttrs(), attr('service.version', '0.3.1')]));
            assert.equal(r.status, 200, r.text);
            assert.equal(fake.view().traces[0].version, '0.3.1');
        });

        test('duplicates are kept: the same span twice is two records and two observations', async () => {
            for (let i = 0; i < 2; i++) {
                const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
                assert.equal(r.status, 200, r.text);
            }
            assert.equal(fake.spans.filter((s) => s.id === SPAN_ID).length, 2);
            assert.equal(fake.view().observations.length, 2);
            assert.deepEqual(fake.view().traces[0].observationIds, [SPAN_ID, SPAN_ID]);
        });

        test('GET /_test/view serves the view over HTTP', async () => {
            await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            const res = await fetch(`${fake.url}/_test/view`);
            assert.equal(res.status, 200);
            assert.deepEqual(await res.json(), fake.view());
        });
    });

    describe('legacy ingestion', () => {
        test('the langfuse.md 2.8 example gets 207 with three successes', async () => {
            const r = await postIngestion(fake, exampleBatch());
            assert.equal(r.status, 207, r.text);
            assert.deepEqual(r.body, {
                successes: [
                    { id: '0b5d7f3e-8a4c-4d0e-9a61-2f1c3b9e7a10', status: 201 },
                    { id: '7c1e4b2a-3d5f-4a6b-8c9d-0e1f2a3b4c5d', status: 201 },
                    { id: 'e3f4a5b6-c7d8-4e9f-a0b1-c2d3e4f5a6b7', status: 201 },
                ],
                errors: [],
            });
            assert.equal(fake.spans.length, 3);
            assert.deepEqual(fake.spans.map((s) => s.kind), ['trace-create', 'span-create', 'generation-create']);
        });

        test('the 2.8 example maps into the same view shape', async () => {
            await postIngestion(fake, exampleBatch());
            const { traces, observations } = fake.view();
            assert.deepEqual(traces, [{
                id: TRACE_ID,
                name: 'chat.completions',
                userId: 'user_12345',
                sessionId: 'session_abc',
                environment: 'production',
                tags: ['gateway'],
                release: '1.4.0',
                version: '1.4.0',
                metadata: { gateway_request_id: 'gen-abc123', provider: 'openai' },
                observationIds: [PARENT_ID, SPAN_ID],
            }]);
            assert.equal(observations.length, 2);
            const [span, gen] = observations;
            assert.equal(span.type, 'SPAN');
            assert.equal(span.name, 'gateway.request');
            assert.equal(span.parentObservationId, null);
            assert.equal(span.userId, 'user_12345', 'observations inherit the trace user');
            assert.equal(gen.type, 'GENERATION');
            assert.equal(gen.parentObservationId, PARENT_ID);
            assert.equal(gen.completionStartTime, '2026-08-22T10:15:30.410Z');
            assert.deepEqual(gen.usageDetails, { input: 200, input_cached_tokens: 1000, output: 50, output_reasoning_tokens: 0, total: 1250 });
            assert.equal(gen.costDetails.total, 0.00225);
            assert.deepEqual(gen.output, { role: 'assistant', content: 'Hi! How can I help?' });
            assert.equal(gen.level, 'DEFAULT');
            assert.equal(gen.sessionId, 'session_abc');
        });

        test('a wrong key is 401', async () => {
            const r = await postIngestion(fake, exampleBatch(), { auth: basic('pk-lf-other', SK) });
            assert.equal(r.status, 401);
            assert.equal(r.body.message, INVALID_CREDENTIALS);
            assert.equal(fake.spans.length, 0);
        });

        test('a gzipped body is 400 (the real endpoint does not inflate it)', async () => {
            const res = await fetch(`${fake.url}/api/public/ingestion`, {
                method: 'POST',
                headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: basic() },
                body: gzipSync(Buffer.from(JSON.stringify(exampleBatch()))),
            });
            assert.equal(res.status, 400);
            assert.equal((await res.json()).message, 'Invalid request data');
            assert.equal(fake.spans.length, 0);
        });

        for (const [name, payload] of [['no batch', { events: [] }], ['batch not an array', { batch: {} }], ['an array body', []]]) {
            test(`${name} is 400 Invalid request data`, async () => {
                const r = await postIngestion(fake, payload);
                assert.equal(r.status, 400);
                assert.equal(r.body.message, 'Invalid request data');
                assert.ok(Array.isArray(r.body.errors));
            });
        }

        test('a body over 4.5 MB is 413', async () => {
            const big = exampleBatch();
            big.batch[0].body.metadata = { blob: 'x'.repeat(INGESTION_MAX_BYTES) };
            const r = await postIngestion(fake, big);
            assert.equal(r.status, 413);
            assert.equal(fake.spans.length, 0);
        });

        const [traceEv, spanEv, genEv] = exampleBatch().batch;
        const mod = (ev, f) => {
            const copy = structuredClone(ev);
            f(copy);
            return copy;
        };
        const itemCases = [
            ['an envelope id of 801 chars', mod(traceEv, (e) => { e.id = 'x'.repeat(801); })],
            ['an envelope id with \\r', mod(traceEv, (e) => { e.id = 'abc\rdef'; })],
            ['an empty envelope id', mod(traceEv, (e) => { e.id = ''; })],
            ['type span-update', mod(spanEv, (e) => { e.type = 'span-update'; })],
            ['type score-create', mod(traceEv, (e) => { e.type = 'score-create'; })],
            ['an envelope timestamp without zone', mod(traceEv, (e) => { e.timestamp = '2026-08-22T10:15:31.480'; })],
            ['a missing body', mod(traceEv, (e) => { delete e.body; })],
            ['a body without id', mod(traceEv, (e) => { delete e.body.id; })],
            ['a body id of 801 chars', mod(spanEv, (e) => { e.body.id = 'y'.repeat(801); })],
            ['an observation without traceId', mod(genEv, (e) => { delete e.body.traceId; })],
            ['a name of 1001 chars', mod(traceEv, (e) => { e.body.name = 'n'.repeat(1001); })],
            ['a startTime without Z', mod(spanEv, (e) => { e.body.startTime = '2026-08-22T10:15:30.000'; })],
            ['a completionStartTime with a space', mod(genEv, (e) => { e.body.completionStartTime = '2026-08-22 10:15:30.410Z'; })],
            ['level INFO', mod(spanEv, (e) => { e.body.level = 'INFO'; })],
            ['environment "Prod"', mod(traceEv, (e) => { e.body.environment = 'Prod'; })],
            ['environment "langfuse-x"', mod(genEv, (e) => { e.body.environment = 'langfuse-x'; })],
            ['usageDetails without total', mod(genEv, (e) => { delete e.body.usageDetails.total; })],
            ['a negative usage value', mod(genEv, (e) => { e.body.usageDetails.input = -1; })],
            ['costDetails without total', mod(genEv, (e) => { delete e.body.costDetails.total; })],
            ['a negative cost value', mod(genEv, (e) => { e.body.costDetails.output = -0.1; })],
            ['usageDetails on a span', mod(spanEv, (e) => { e.body.usageDetails = { input: 1, total: 1 }; })],
            ['tags that are not strings', mod(traceEv, (e) => { e.body.tags = [1]; })],
            ['a non-object item', 'not an event'],
        ];
        for (const [name, bad] of itemCases) {
            test(`${name} is an item error 400 while the rest of the batch succeeds`, async () => {
                const good = mod(traceEv, (e) => { e.id = 'good-event'; e.body.id = 'ffffffffffffffffffffffffffffffff'; });
                const r = await postIngestion(fake, { batch: [good, bad] });
                assert.equal(r.status, 207, r.text);
                assert.deepEqual(r.body.successes, [{ id: 'good-event', status: 201 }]);
                assert.equal(r.body.errors.length, 1, r.text);
                const [err] = r.body.errors;
                assert.equal(err.status, 400);
                assert.equal(err.message, 'Invalid request data');
                assert.equal(typeof err.error, 'string');
                assert.equal(err.id, typeof bad === 'object' && typeof bad.id === 'string' ? bad.id : 'unknown');
                assert.equal(fake.spans.length, 1);
                assert.equal(fake.spans[0].eventId, 'good-event');
            });
        }

        test('reject207Items answers the chosen items 400/500 and counts attempts', async () => {
            fake.reject207Items((ev, { attempt }) => {
                if (ev.type === 'span-create') return 400;
                if (ev.type === 'generation-create' && attempt === 1) return 500;
                return undefined;
            });
            const first = await postIngestion(fake, exampleBatch());
            assert.equal(first.status, 207);
            assert.equal(first.body.successes.length, 1);
            assert.deepEqual(first.body.errors.map((e) => [e.id, e.status]), [
                ['7c1e4b2a-3d5f-4a6b-8c9d-0e1f2a3b4c5d', 400],
                ['e3f4a5b6-c7d8-4e9f-a0b1-c2d3e4f5a6b7', 500],
            ]);
            assert.equal(first.body.errors[1].message, 'Internal Server Error');
            const retry = await postIngestion(fake, { batch: [exampleBatch().batch[2]] });
            assert.deepEqual(retry.body.successes, [{ id: 'e3f4a5b6-c7d8-4e9f-a0b1-c2d3e4f5a6b7', status: 201 }]);
            assert.deepEqual(fake.spans.map((s) => s.kind), ['trace-create', 'generation-create']);
            assert.deepEqual(fake.ingestionItems.map((i) => [i.type, i.status, i.attempt]), [
                ['trace-create', 201, 1], ['span-create', 400, 1], ['generation-create', 500, 1], ['generation-create', 201, 2],
            ]);
            assert.equal(fake.exports[0].error !== null, true, 'a 207 with errors is noted in exports');
        });

        test('an observation whose trace-create never came has no trace row', async () => {
            const r = await postIngestion(fake, { batch: [exampleBatch().batch[2]] });
            assert.equal(r.status, 207);
            const v = fake.view();
            assert.equal(v.traces.length, 0);
            assert.equal(v.observations.length, 1);
        });
    });

    describe('failure injection and waiting', () => {
        test('failNext answers the next n exports with the given status and records nothing from them', async () => {
            fake.failNext(2, { status: 503 });
            fake.failNext(1, { status: 429, headers: { 'Retry-After': '1' }, body: { message: 'rate limited' } });
            const statuses = [];
            for (let i = 0; i < 4; i++) {
                const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
                statuses.push(r.status);
                if (r.status === 429) {
                    assert.equal(r.headers.get('retry-after'), '1');
                    assert.deepEqual(r.body, { message: 'rate limited' });
                }
            }
            assert.deepEqual(statuses, [503, 503, 429, 200]);
            assert.equal(fake.spans.length, 1);
            assert.deepEqual(fake.exports.map((e) => [e.status, e.injected]), [[503, true], [503, true], [429, true], [200, false]]);
            assert.equal(fake.rawBodies.length, 4, 'bodies of failed exports are kept for privacy checks');
        });

        test('injected failures come before auth and apply to the legacy endpoint too', async () => {
            fake.failNext(1, { status: 500 });
            const r = await postIngestion(fake, exampleBatch(), { auth: basic('x', 'y') });
            assert.equal(r.status, 500);
            const ok = await postIngestion(fake, exampleBatch());
            assert.equal(ok.status, 207);
        });

        test('dropConnections destroys the socket of the next export without an answer', async () => {
            fake.dropConnections(1);
            await assert.rejects(postOtlp(fake, otlpPayload([exampleGenerationSpan()])));
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.equal(r.status, 200);
            assert.equal(fake.spans.length, 1);
            assert.equal(fake.exports[0].dropped, true);
            assert.equal(fake.exports[0].status, null);
        });

        test('setDelay delays answers; a failure injection can add its own delay', async () => {
            fake.setDelay(250);
            let t0 = performance.now();
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.equal(r.status, 200);
            assert.ok(performance.now() - t0 >= 240, 'the answer came before the delay');
            fake.setDelay(0);
            fake.failNext(1, { status: 503, delayMs: 200 });
            t0 = performance.now();
            const f = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.equal(f.status, 503);
            assert.ok(performance.now() - t0 >= 190);
        });

        test('a client that gives up during the delay gets nothing recorded', async () => {
            fake.setDelay(5000);
            const controller = new AbortController();
            const pending = fetch(`${fake.url}/api/public/otel/v1/traces`, {
                method: 'POST',
                headers: { 'content-type': 'application/json', 'x-langfuse-ingestion-version': '4', authorization: basic() },
                body: JSON.stringify(otlpPayload([exampleGenerationSpan()])),
                signal: controller.signal,
            });
            await fake.waitFor(() => fake.exports.length === 1, { what: 'the export to arrive' });
            controller.abort();
            await assert.rejects(pending);
            await fake.waitFor(() => fake.exports[0].clientClosed, { what: 'the fake to see the close' });
            assert.equal(fake.spans.length, 0);
        });

        test('setKeys changes the accepted keys; reset restores them', async () => {
            fake.setKeys('pk-lf-new', 'sk-lf-new');
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 401);
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { auth: basic('pk-lf-new', 'sk-lf-new') })).status, 200);
            fake.reset();
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 200);
        });

        test('reset clears records, exports, bodies and pending injections', async () => {
            fake.failNext(3, { status: 503 });
            await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            fake.reset();
            assert.equal(fake.exports.length, 0);
            assert.equal(fake.rawBodies.length, 0);
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.equal(r.status, 200);
            assert.equal(fake.spans.length, 1);
        });

        test('waitForObservations resolves with the view once n observations arrived', async () => {
            const waiting = fake.waitForObservations(2);
            await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            await postIngestion(fake, exampleBatch());
            const view = await withTimeout(waiting, 5000, 'waitForObservations');
            assert.equal(view.observations.length, 3);
        });

        test('waitForObservations rejects with a list of what arrived', async () => {
            await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            await postOtlp(fake, otlpPayload([exampleGenerationSpan({ traceId: 'nothex' })]));
            await assert.rejects(fake.waitForObservations(5, { timeoutMs: 200 }), (err) => {
                assert.match(err.message, /timed out after 200 ms waiting for 5 observation/);
                assert.match(err.message, new RegExp(`id=${SPAN_ID}`));
                assert.match(err.message, /-> 400 .*traceId/);
                return true;
            });
        });
    });

    describe('Test Connection outcomes', () => {
        const ORG = { publicKey: 'pk-lf-org', secretKey: 'sk-lf-org' };

        async function getProbe(f, path, { auth = basic(), signal } = {}) {
            const res = await fetch(`${f.url}${path}`, { headers: auth ? { authorization: auth } : {}, signal });
            const text = await res.text();
            let json = null;
            try {
                json = JSON.parse(text);
            } catch { /* left null */ }
            return { status: res.status, body: json, text, headers: res.headers };
        }

        test('organizationKeys: projects answers 403 with the real message; the project keys still work', async () => {
            const f = await startFakeLangfuse({ organizationKeys: ORG });
            try {
                const org = await getProbe(f, '/api/public/projects', { auth: basic(ORG.publicKey, ORG.secretKey) });
                assert.equal(org.status, 403);
                assert.deepEqual(org.body, { message: ORGANIZATION_KEY_403 });
                assert.equal(ORGANIZATION_KEY_403, 'Invalid API key. Are you using an organization key?');
                const ok = await getProbe(f, '/api/public/projects');
                assert.equal(ok.status, 200);
                const wrong = await getProbe(f, '/api/public/projects', { auth: basic(ORG.publicKey, 'sk-lf-nope') });
                assert.equal(wrong.status, 401, 'only the exact pair is an organisation key');
            } finally {
                await f.close();
            }
        });

        test('organizationKeys: the export endpoints refuse them with 401 and record nothing', async () => {
            fake.setOrganizationKeys([ORG]);
            const otlp = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { auth: basic(ORG.publicKey, ORG.secretKey) });
            assert.equal(otlp.status, 401);
            assert.equal(otlp.body.message, ORGANIZATION_KEY_401);
            const ing = await postIngestion(fake, exampleBatch(), { auth: basic(ORG.publicKey, ORG.secretKey) });
            assert.equal(ing.status, 401);
            assert.equal(ing.body.message, ORGANIZATION_KEY_401);
            assert.equal(fake.spans.length, 0);
        });

        test('reset forgets organisation keys set at run time', async () => {
            fake.setOrganizationKeys(ORG);
            assert.equal((await getProbe(fake, '/api/public/projects', { auth: basic(ORG.publicKey, ORG.secretKey) })).status, 403);
            fake.reset();
            const r = await getProbe(fake, '/api/public/projects', { auth: basic(ORG.publicKey, ORG.secretKey) });
            assert.equal(r.status, 401);
            assert.equal(r.body.message, INVALID_CREDENTIALS);
        });

        test('notLangfuse: every path answers 404 text/html, exports included, and nothing is recorded', async () => {
            const f = await startFakeLangfuse({ notLangfuse: true });
            try {
                for (const path of ['/api/public/projects', '/api/public/health', '/api/public/ready', '/']) {
                    const r = await getProbe(f, path);
                    assert.equal(r.status, 404, path);
                    assert.match(r.headers.get('content-type'), /^text\/html/, path);
                    assert.match(r.text, /<html/, path);
                    assert.equal(r.body, null, `${path} must not be JSON`);
                }
                const otlp = await postOtlp(f, otlpPayload([exampleGenerationSpan()]));
                assert.equal(otlp.status, 404);
                const ing = await postIngestion(f, exampleBatch());
                assert.equal(ing.status, 404);
                assert.equal(f.spans.length, 0);
                assert.equal(f.exports.length, 0, 'a 404 is not an export');
                assert.deepEqual(f.requests.map((r) => [r.method, r.path, r.status, r.outcome]), [
                    ['GET', '/api/public/projects', 404, 'answered'],
                    ['GET', '/api/public/health', 404, 'answered'],
                    ['GET', '/api/public/ready', 404, 'answered'],
                    ['GET', '/', 404, 'answered'],
                    ['POST', '/api/public/otel/v1/traces', 404, 'answered'],
                    ['POST', '/api/public/ingestion', 404, 'answered'],
                ]);
                const view = await fetch(`${f.url}/_test/view`);
                assert.equal(view.status, 200, 'the fake\'s own /_test/view keeps working');
                await view.body.cancel();
            } finally {
                await f.close();
            }
        });

        test('setNotLangfuse switches the mode at run time; reset restores it', async () => {
            fake.setNotLangfuse(true);
            assert.equal((await getProbe(fake, '/api/public/health')).status, 404);
            fake.setNotLangfuse(false);
            assert.equal((await getProbe(fake, '/api/public/health')).status, 200);
            fake.setNotLangfuse(true);
            fake.reset();
            assert.equal((await getProbe(fake, '/api/public/projects')).status, 200);
            assert.throws(() => fake.setNotLangfuse('yes'), TypeError);
        });

        test('probeMode hang: projects and health never answer; exports still work; close() ends the hang', async () => {
            const f = await startFakeLangfuse({ probeMode: 'hang' });
            let closed = false;
            try {
                for (const path of ['/api/public/projects', '/api/public/health']) {
                    const t0 = performance.now();
                    await assert.rejects(getProbe(f, path, { signal: AbortSignal.timeout(300) }), /abort|timeout/i);
                    assert.ok(performance.now() - t0 >= 250, `${path} answered before the client gave up`);
                }
                await f.waitFor(() => f.requests.length === 2 && f.requests.every((r) => r.outcome === 'client closed'),
                    { timeoutMs: 5000, what: 'the fake to see both clients go away' });
                assert.deepEqual(f.requests.map((r) => r.status), [null, null]);
                const otlp = await postOtlp(f, otlpPayload([exampleGenerationSpan()]));
                assert.equal(otlp.status, 200, 'only the probes hang');
                // A probe left hanging must not keep close() waiting.
                const pending = getProbe(f, '/api/public/health').then(() => 'answered', () => 'failed');
                const [hanging] = (await f.waitForRequests(2, { path: '/api/public/health' })).slice(-1);
                assert.equal(hanging.outcome, 'hang');
                closed = true;
                await withTimeout(f.close(), 5000, 'close() with a hanging probe');
                assert.equal(await withTimeout(pending, 5000, 'the hanging client to fail'), 'failed');
            } finally {
                if (!closed) await f.close();
            }
        });

        test('probeMode close: the socket is closed without an answer', async () => {
            fake.setProbeMode('close');
            await assert.rejects(getProbe(fake, '/api/public/projects'));
            await assert.rejects(getProbe(fake, '/api/public/health'));
            assert.ok(fake.requests.length >= 2);
            for (const r of fake.requests) {
                assert.equal(r.outcome, 'closed');
                assert.equal(r.status, null);
            }
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 200, 'only the probes are closed');
            fake.setProbeMode('answer');
            assert.equal((await getProbe(fake, '/api/public/projects')).status, 200);
            assert.throws(() => fake.setProbeMode('sometimes'), TypeError);
            await assert.rejects(startFakeLangfuse({ probeMode: 'sometimes' }), TypeError);
        });

        test('version: an old server, setVersion, a missing version, and reset', async () => {
            const f = await startFakeLangfuse({ version: '3.10.0' });
            try {
                assert.deepEqual((await getProbe(f, '/api/public/health')).body, { status: 'OK', version: '3.10.0' });
                assert.equal(f.version, '3.10.0');
                f.setVersion('3.22.0');
                assert.deepEqual((await getProbe(f, '/api/public/ready')).body, { status: 'OK', version: '3.22.0' });
                f.setVersion(null);
                assert.deepEqual((await getProbe(f, '/api/public/health')).body, { status: 'OK' });
                f.reset();
                assert.deepEqual((await getProbe(f, '/api/public/health')).body, { status: 'OK', version: '3.10.0' });
            } finally {
                await f.close();
            }
        });

        test('setProjects changes what projects lists; reset restores it', async () => {
            fake.setProjects([{ id: 'proj_9', name: 'Other' }]);
            assert.deepEqual((await getProbe(fake, '/api/public/projects')).body.data.map((p) => [p.id, p.name]), [['proj_9', 'Other']]);
            fake.reset();
            assert.deepEqual((await getProbe(fake, '/api/public/projects')).body.data.map((p) => [p.id, p.name]), [['proj_1', 'Test Project']]);
        });

        test('requests logs every request with its key and outcome; dropped exports show as closed', async () => {
            await getProbe(fake, '/api/public/projects', { auth: basic('pk-lf-who', 'sk-lf-x') });
            await getProbe(fake, '/api/public/health', { auth: null });
            fake.dropConnections(1);
            await assert.rejects(postOtlp(fake, otlpPayload([exampleGenerationSpan()])));
            await fake.waitFor(() => fake.requests.length === 3 && fake.requests[2].outcome === 'closed',
                { timeoutMs: 5000, what: 'the dropped export in the log' });
            assert.deepEqual(fake.requests.map((r) => [r.method, r.path, r.publicKey, r.status, r.outcome]), [
                ['GET', '/api/public/projects', 'pk-lf-who', 401, 'answered'],
                ['GET', '/api/public/health', null, 200, 'answered'],
                ['POST', '/api/public/otel/v1/traces', PK, null, 'closed'],
            ]);
            const seqs = fake.requests.map((r) => r.seq);
            assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
        });

        test('waitForRequests resolves once n requests to a path arrived, and rejects on timeout', async () => {
            const waiting = fake.waitForRequests(2, { path: '/api/public/health' });
            await getProbe(fake, '/api/public/projects');
            await getProbe(fake, '/api/public/health');
            await getProbe(fake, '/api/public/health');
            const got = await withTimeout(waiting, 5000, 'waitForRequests');
            assert.deepEqual(got.map((r) => r.path), ['/api/public/health', '/api/public/health']);
            await assert.rejects(fake.waitForRequests(1, { path: '/nowhere', timeoutMs: 100 }), /1 request\(s\) to \/nowhere/);
        });
    });

    describe('fault modes: standing failure, rejected observations, pause', () => {
        const OTHER_SPAN_ID = 'c3d4e5f6a7081920';

        /** A connection attempt to the port; resolves with the error code ('connected' if none). */
        function tryConnect(port) {
            return new Promise((resolve) => {
                const socket = net.connect({ port, host: '127.0.0.1' });
                socket.once('connect', () => {
                    socket.destroy();
                    resolve('connected');
                });
                socket.once('error', (err) => resolve(err.code));
            });
        }

        test('setFailure answers every export with the given status, headers and body until cleared', async () => {
            fake.setFailure({ status: 503, body: { message: 'down for maintenance' } });
            assert.deepEqual(fake.failure, { status: 503, body: { message: 'down for maintenance' }, headers: {}, delayMs: 0 });
            for (let i = 0; i < 3; i++) {
                const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
                assert.equal(r.status, 503);
                assert.deepEqual(r.body, { message: 'down for maintenance' });
            }
            // The legacy endpoint too, and before the auth check: wrong keys get the failure.
            const legacy = await postIngestion(fake, exampleBatch(), { auth: basic('pk-x', 'sk-y') });
            assert.equal(legacy.status, 503);
            assert.equal(fake.spans.length, 0, 'nothing is recorded during a standing failure');
            assert.deepEqual(fake.exports.map((e) => [e.status, e.injected, e.accepted]),
                [[503, true, 0], [503, true, 0], [503, true, 0], [503, true, 0]]);
            assert.equal(fake.ingestionItems.length, 0);
            // Probes are not exports: Test Connection still works during an export outage.
            const probe = await fetch(`${fake.url}/api/public/projects`, { headers: { authorization: basic() } });
            assert.equal(probe.status, 200);
            await probe.body.cancel();

            fake.setFailure(null);
            assert.equal(fake.failure, null);
            const ok = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.equal(ok.status, 200);
            assert.equal(fake.spans.length, 1);
        });

        test('setFailure with 429 and Retry-After; a text body; an extra delay', async () => {
            fake.setFailure({ status: 429, headers: { 'Retry-After': '2' }, body: { message: 'rate limited' } });
            const r = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.equal(r.status, 429);
            assert.equal(r.headers.get('retry-after'), '2');
            assert.deepEqual(r.body, { message: 'rate limited' });
            fake.setFailure({ status: 502, body: '<html>bad gateway</html>', delayMs: 150 });
            const t0 = performance.now();
            const t = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]));
            assert.ok(performance.now() - t0 >= 140, 'the delay of the failure is applied');
            assert.equal(t.status, 502);
            assert.equal(t.text, '<html>bad gateway</html>');
            assert.match(t.headers.get('content-type'), /^text\/plain/);
            assert.ok(fake.exports.every((e) => e.injected && e.status !== 200));
        });

        test('the failNext queue waits while a standing failure is set, and is consumed after', async () => {
            fake.failNext(1, { status: 500 });
            fake.setFailure({ status: 503 });
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 503);
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 503);
            fake.setFailure(null);
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 500, 'the queued failure comes next');
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 200);
        });

        test('setFailure refuses malformed failures; reset clears the standing failure', async () => {
            for (const bad of [{}, { status: '503' }, { status: 42 }, { status: 503, headers: 'x' }, { status: 503, delayMs: -1 },
                { status: 503, body: 7 }, 503]) {
                assert.throws(() => fake.setFailure(bad), TypeError, JSON.stringify(bad));
            }
            fake.setFailure({ status: 500 });
            fake.reset();
            assert.equal(fake.failure, null);
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 200);
        });

        test('rejectObservations refuses the whole export holding a matching span (400, nothing recorded)', async () => {
            const seen = [];
            fake.rejectObservations((r) => {
                seen.push(r);
                return r.id === OTHER_SPAN_ID;
            });
            const good = exampleGenerationSpan();
            const bad = exampleGenerationSpan({ spanId: OTHER_SPAN_ID, name: 'refused one' });
            const r = await postOtlp(fake, otlpPayload([good, bad]));
            assert.equal(r.status, 400, r.text);
            assert.equal(typeof r.body.error, 'string');
            assert.match(r.body.error, new RegExp(OTHER_SPAN_ID));
            assert.equal(fake.spans.length, 0, 'the good span of a refused export is not recorded either');
            // The predicate sees each span's observation id and decoded attributes.
            assert.deepEqual(seen.map((s) => s.id), [SPAN_ID, OTHER_SPAN_ID]);
            assert.equal(seen[1].attrs['langfuse.observation.type'], 'generation');
            assert.equal(seen[1].name, 'refused one');
            assert.equal(seen[1].traceId, TRACE_ID);
            const [e] = fake.exports;
            assert.equal(e.status, 400);
            assert.equal(e.injected, true);
            assert.deepEqual(e.rejectedIds, [OTHER_SPAN_ID]);
            assert.equal(e.accepted, 0);

            // The good record alone (what a client splitting the batch sends) is accepted.
            const alone = await postOtlp(fake, otlpPayload([good]));
            assert.equal(alone.status, 200);
            assert.deepEqual(fake.spans.map((s) => s.id), [SPAN_ID]);
            assert.equal(fake.exports[1].rejectedIds, null);
            assert.equal(fake.exports[1].injected, false);
            // The bad one alone keeps being refused.
            assert.equal((await postOtlp(fake, otlpPayload([bad]))).status, 400);
            fake.rejectObservations(null);
            assert.equal((await postOtlp(fake, otlpPayload([bad]))).status, 200);
            assert.deepEqual(fake.spans.map((s) => s.id), [SPAN_ID, OTHER_SPAN_ID]);
        });

        test('rejectObservations acts only on exports that pass every other check', async () => {
            fake.rejectObservations(() => true);
            const wrongKey = await postOtlp(fake, otlpPayload([exampleGenerationSpan()]), { auth: basic(PK, 'sk-wrong') });
            assert.equal(wrongKey.status, 401);
            const invalid = await postOtlp(fake, otlpPayload([exampleGenerationSpan({ traceId: 'nothex' })]));
            assert.equal(invalid.status, 400);
            assert.match(invalid.body.error, /traceId/);
            assert.deepEqual(fake.exports.map((e) => [e.rejectedIds, e.injected]), [[null, false], [null, false]]);
            // The legacy endpoint is left to reject207Items.
            assert.equal((await postIngestion(fake, exampleBatch())).status, 207);
            fake.reset();
            assert.equal((await postOtlp(fake, otlpPayload([exampleGenerationSpan()]))).status, 200, 'reset removes the predicate');
        });

        test('pause refuses connections on the port; resume listens on the same port and keeps the records', async () => {
            const own = await startFakeLangfuse();
            try {
                assert.equal((await postOtlp(own, otlpPayload([exampleGenerationSpan()]))).status, 200);
                // A keep-alive connection is open now; pause must end it too.
                await own.pause();
                assert.equal(own.paused, true);
                assert.equal(await tryConnect(own.port), 'ECONNREFUSED');
                await assert.rejects(postOtlp(own, otlpPayload([exampleGenerationSpan()])), (err) => {
                    assert.equal(err.cause?.code, 'ECONNREFUSED', String(err.cause));
                    return true;
                });
                await assert.rejects(fetch(`${own.url}/api/public/health`));
                await own.pause(); // a second pause is harmless
                assert.equal(own.exports.length, 1, 'a refused connection is no export');

                await own.resume();
                assert.equal(own.paused, false);
                assert.equal(await tryConnect(own.port), 'connected');
                const again = await postOtlp(own, otlpPayload([exampleGenerationSpan()]));
                assert.equal(again.status, 200);
                assert.equal(own.spans.length, 2, 'records from before the pause are kept');
                assert.deepEqual(own.exports.map((e) => e.status), [200, 200]);
                await own.resume(); // a second resume is harmless
            } finally {
                await own.close();
            }
        });

        test('pause ends an export in progress: the client gets no answer and nothing is recorded', async () => {
            const own = await startFakeLangfuse();
            try {
                own.setDelay(5000);
                const pending = postOtlp(own, otlpPayload([exampleGenerationSpan()]));
                await own.waitFor(() => own.exports.length === 1, { what: 'the export to arrive' });
                const t0 = performance.now();
                await own.pause();
                await assert.rejects(pending);
                assert.ok(performance.now() - t0 < 2000, 'pause does not wait for the delayed answer');
                const [e] = own.exports;
                assert.equal(e.dropped, true);
                assert.equal(e.clientClosed, false);
                assert.equal(e.status, null);
                assert.notEqual(e.answeredAt, null);
                assert.equal(own.requests[0].outcome, 'closed');
                // Once the delay has passed, the dropped export must still not be recorded.
                await own.resume();
                own.setDelay(0);
                assert.equal((await postOtlp(own, otlpPayload([exampleGenerationSpan()]))).status, 200);
                assert.equal(own.spans.length, 1);
            } finally {
                await own.close();
            }
        });

        test('close works while paused and rejects pending waiters', async () => {
            const own = await startFakeLangfuse();
            await own.pause();
            const waiting = own.waitForExports(1, { timeoutMs: 5000 });
            await withTimeout(own.close(), 5000, 'close while paused');
            await assert.rejects(waiting, /closed/);
        });
    });

    test('runs standalone and prints its address', async () => {
        const file = fileURLToPath(new URL('./fake_langfuse.mjs', import.meta.url));
        const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
        try {
            const url = await withTimeout(new Promise((resolve, reject) => {
                let out = '';
                child.stdout.setEncoding('utf8');
                child.stdout.on('data', (t) => {
                    out += t;
                    const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
                    if (m) resolve(m[1]);
                });
                child.once('exit', (code) => reject(new Error(`exited ${code}`)));
            }), 10_000, 'the standalone fake to listen');
            const res = await fetch(`${url}/api/public/health`);
            assert.equal(res.status, 200);
            assert.equal((await res.json()).status, 'OK');
        } finally {
            const exited = new Promise((resolve) => child.once('exit', resolve));
            child.kill('SIGTERM');
            await exited;
        }
    });

    test('runs standalone with --server-version and --not-langfuse', async () => {
        const file = fileURLToPath(new URL('./fake_langfuse.mjs', import.meta.url));
        for (const [args, check] of [
            [['--server-version', '3.10.0'], async (url) => {
                const res = await fetch(`${url}/api/public/health`);
                assert.deepEqual(await res.json(), { status: 'OK', version: '3.10.0' });
            }],
            [['--not-langfuse'], async (url) => {
                const res = await fetch(`${url}/api/public/health`);
                assert.equal(res.status, 404);
                assert.match(res.headers.get('content-type'), /^text\/html/);
                await res.body.cancel();
            }],
        ]) {
            const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
            try {
                const url = await withTimeout(new Promise((resolve, reject) => {
                    let out = '';
                    child.stdout.setEncoding('utf8');
                    child.stdout.on('data', (t) => {
                        out += t;
                        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
                        if (m) resolve(m[1]);
                    });
                    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
                }), 10_000, 'the standalone fake to listen');
                await check(url);
            } finally {
                const exited = new Promise((resolve) => child.once('exit', resolve));
                child.kill('SIGTERM');
                await exited;
            }
        }
    });
});
