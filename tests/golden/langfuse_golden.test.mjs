// Golden cases for Broadcast to Langfuse: each tests/golden/langfuse/*.json file is one request
// (or a few) sent to the real Beacon, and what the strict fake Langfuse then shows. The case
// format is described in tests/golden/langfuse/README.md.
//
// One Beacon (and one fake Langfuse) per distinct destination option set, reused across the
// cases of that set; one fake upstream for all. Fakes are reset between cases.
//
// Run: BEACON_BIN=build/src/beacon node --test tests/golden/langfuse_golden.test.mjs
//      GOLDEN_FILTER=seed  runs only the cases whose file name contains "seed".

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startFakeUpstream, chatCompletion } from '../fakes/fake_upstream.mjs';
import {
    startFakeLangfuse, broadcastToml, sha256Hex, generationObservationId, spanObservationId,
} from '../fakes/fake_langfuse.mjs';
import {
    makeTempDir, removeDir, writeConfig, createKey, startBeacon, gatewayConfig, readSse,
} from '../integration/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CASE_DIR = path.join(HERE, 'langfuse');
const KEY_NAME = 'golden-tests';
const WAIT_TIMEOUT_MS = 15_000;
// Slack allowed between the times the test saw and the times Beacon reports (same machine).
const CLOCK_SLACK_MS = 1000;

/** The gateway config of the golden runs: the harness one, bigger bodies, one cached-price model. */
function goldenGatewayConfig(upstreamUrl) {
    const base = gatewayConfig(upstreamUrl).replace('max_body_bytes = 65536', 'max_body_bytes = 1048576');
    if (base.includes('max_body_bytes = 65536')) throw new Error('could not raise max_body_bytes');
    return `${base}
[[models]]
id = "cached/model"
provider = "fake"
upstream_model = "cached-model"
prompt_price = 0.000003
completion_price = 0.000015
cached_prompt_price = 0.0000003
`;
}

// ---------------------------------------------------------------------------------------------
// Loading cases

/** Expands {"$repeat": {"text": s, "count": n}} anywhere in a case into the repeated string. */
function expand(value) {
    if (Array.isArray(value)) return value.map(expand);
    if (value !== null && typeof value === 'object') {
        const keys = Object.keys(value);
        if (keys.length === 1 && keys[0] === '$repeat') {
            const { text, count } = value.$repeat;
            if (typeof text !== 'string' || !Number.isInteger(count)) throw new Error(`bad $repeat ${JSON.stringify(value)}`);
            return text.repeat(count);
        }
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v)]));
    }
    return value;
}

function loadCases() {
    const filter = process.env.GOLDEN_FILTER;
    return readdirSync(CASE_DIR)
        .filter((f) => f.endsWith('.json'))
        .filter((f) => !filter || f.includes(filter))
        .sort()
        .map((file) => {
            const raw = JSON.parse(readFileSync(path.join(CASE_DIR, file), 'utf8'));
            const c = expand(raw);
            c.file = file;
            c.destination = { privacy_mode: false, transport: 'otlp', ...(c.destination ?? {}) };
            c.requests = c.requests ?? [c.request];
            if (!c.requests.every((r) => r && r.body)) throw new Error(`${file}: every request needs a body`);
            return c;
        });
}

function destinationKey(d) {
    return `privacy_mode=${d.privacy_mode}, transport=${d.transport}`;
}

// ---------------------------------------------------------------------------------------------
// Sending

function upstreamScript(s) {
    if (!s.completion) return s;
    const { completion, ...rest } = s;
    return { ...rest, json: chatCompletion(completion) };
}

/** Sends one request of a case; returns what the matchers may refer to. */
async function send(stack, request, client) {
    const headers = {
        'content-type': 'application/json',
        authorization: `Bearer ${stack.key}`,
        ...(request.headers ?? {}),
    };
    const sentAt = Date.now();
    const controller = new AbortController();
    const res = await fetch(`${stack.beacon.baseUrl}/api/v1/chat/completions`, {
        method: 'POST',
        headers,
        body: JSON.stringify(request.body),
        signal: controller.signal,
    });
    const out = { status: res.status, genId: res.headers.get('x-generation-id'), json: null, sentAt, doneAt: null };
    const isSse = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
    if (client === 'abort-after-first-chunk') {
        assert.ok(isSse, `abort-after-first-chunk needs a stream answer, got ${res.status} ${res.headers.get('content-type')}`);
        const events = readSse(res.body);
        for (;;) {
            const { value, done } = await events.next();
            assert.ok(!done, 'the stream ended before any content');
            const ch = value.json?.choices?.[0];
            if (value.json && !out.genId) out.genId = value.json.id;
            if (typeof ch?.delta?.content === 'string' && ch.delta.content.length > 0) break;
        }
        controller.abort();
        await events.next().catch(() => undefined);
        out.doneAt = Date.now();
        return out;
    }
    if (isSse) {
        const chunks = [];
        for await (const ev of readSse(res.body)) if (ev.json !== undefined) chunks.push(ev.json);
        out.chunks = chunks;
        out.json = chunks.find((c) => c.error !== undefined) ?? chunks.at(-1) ?? null;
        if (!out.genId) out.genId = chunks[0]?.id ?? null;
    } else {
        const text = await res.text();
        try {
            out.json = JSON.parse(text);
        } catch {
            out.json = null;
        }
        out.text = text;
        if (!out.genId && typeof out.json?.id === 'string') out.genId = out.json.id;
    }
    out.doneAt = Date.now();
    return out;
}

// ---------------------------------------------------------------------------------------------
// Matching

const MATCHERS = new Set(['startsWith', 'contains', 'regex', 'sha256_32', 'sha256_16', 'sha256_16_of_generation_id',
    'sha256_32_of_generation_id', 'is_generation_id', 'approx', 'fromResponse', 'subset', 'exact', 'jsonOf', 'anyOf']);

function isMatcher(e) {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) return false;
    const keys = Object.keys(e);
    if (keys.length === 1 && MATCHERS.has(keys[0])) return true;
    return keys.length === 2 && 'approx' in e && 'tolerance' in e;
}

function show(v) {
    if (v === undefined) return 'undefined';
    const s = JSON.stringify(v);
    return s.length > 300 ? `${s.slice(0, 300)}... (${s.length} chars)` : s;
}

function getPath(obj, p) {
    return p.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/**
 * Compares `actual` with `expected` (values, nested matchers, objects, arrays) and appends a
 * message per difference to ctx.diffs. Plain objects are compared exactly unless `subset`.
 */
function match(expected, actual, where, ctx, { subset = false } = {}) {
    const diff = (msg) => ctx.diffs.push(`${where}: ${msg}`);
    if (expected === 'present') {
        if (actual === null || actual === undefined) diff('expected a value, got none');
        return;
    }
    if (expected === 'absent') {
        if (actual !== null && actual !== undefined) diff(`expected nothing, got ${show(actual)}`);
        return;
    }
    if (expected === null) {
        if (actual !== null && actual !== undefined) diff(`expected null, got ${show(actual)}`);
        return;
    }
    if (isMatcher(expected)) {
        matchSpecial(expected, actual, where, ctx);
        return;
    }
    if (Array.isArray(expected)) {
        if (!Array.isArray(actual)) return diff(`expected an array ${show(expected)}, got ${show(actual)}`);
        if (actual.length !== expected.length) {
            return diff(`expected ${expected.length} item(s), got ${actual.length}: ${show(actual)}`);
        }
        expected.forEach((e, i) => match(e, actual[i], `${where}[${i}]`, ctx));
        return;
    }
    if (typeof expected === 'object') {
        if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
            return diff(`expected an object ${show(expected)}, got ${show(actual)}`);
        }
        for (const [k, e] of Object.entries(expected)) match(e, actual[k], `${where}.${k}`, ctx);
        if (!subset) {
            const extra = Object.keys(actual).filter((k) => !(k in expected));
            if (extra.length > 0) diff(`unexpected key(s) ${extra.map((k) => `${k}=${show(actual[k])}`).join(', ')}`);
        }
        return;
    }
    if (!Object.is(expected, actual)) {
        if (typeof expected === 'string' && typeof actual === 'string' && (expected.length > 200 || actual.length > 200)) {
            let i = 0;
            while (i < expected.length && expected[i] === actual[i]) i++;
            return diff(`strings differ at index ${i} (expected length ${expected.length}, got ${actual.length}): ` +
                `expected ...${show(expected.slice(i, i + 40))}, got ...${show(actual.slice(i, i + 40))}`);
        }
        diff(`expected ${show(expected)}, got ${show(actual)}`);
    }
}

function requireGenId(ctx, where) {
    const g = ctx.genId;
    if (!g) ctx.diffs.push(`${where}: the case needs the generation id of request ${ctx.request}, but the response had none (no x-generation-id header, no id)`);
    return g;
}

function matchSpecial(e, actual, where, ctx) {
    const diff = (msg) => ctx.diffs.push(`${where}: ${msg}`);
    const [kind] = Object.keys(e);
    const v = e[kind];
    const expectEq = (want, how) => {
        if (actual !== want) diff(`expected ${show(want)} (${how}), got ${show(actual)}`);
    };
    switch (kind) {
        case 'startsWith':
            if (typeof actual !== 'string' || !actual.startsWith(v)) diff(`expected a string starting with ${show(v)}, got ${show(actual)}`);
            return;
        case 'contains':
            if (typeof actual !== 'string' || !actual.includes(v)) diff(`expected a string containing ${show(v)}, got ${show(actual)}`);
            return;
        case 'regex':
            if (typeof actual !== 'string' || !new RegExp(v).test(actual)) diff(`expected a string matching /${v}/, got ${show(actual)}`);
            return;
        case 'sha256_32':
            return expectEq(sha256Hex(v).slice(0, 32), `first 32 hex of sha256(${show(v)})`);
        case 'sha256_16':
            return expectEq(sha256Hex(v).slice(0, 16), `first 16 hex of sha256(${show(v)})`);
        case 'sha256_16_of_generation_id': {
            const g = requireGenId(ctx, where);
            if (!g) return;
            const seed = v === true ? g : `${g}${v}`;
            return expectEq(sha256Hex(seed).slice(0, 16), `first 16 hex of sha256(${show(seed)})`);
        }
        case 'sha256_32_of_generation_id': {
            const g = requireGenId(ctx, where);
            if (!g) return;
            return expectEq(sha256Hex(g).slice(0, 32), `first 32 hex of sha256(${show(g)})`);
        }
        case 'is_generation_id': {
            const g = requireGenId(ctx, where);
            if (g) expectEq(g, 'the generation id');
            return;
        }
        case 'approx': {
            const tol = e.tolerance ?? 1e-12;
            if (typeof actual !== 'number' || Math.abs(actual - v) > tol) diff(`expected ${v} ± ${tol}, got ${show(actual)}`);
            return;
        }
        case 'fromResponse': {
            const want = getPath(ctx.response?.json, v);
            if (want === undefined) return diff(`the response of request ${ctx.request} has no ${v} (${show(ctx.response?.json)})`);
            return expectEq(want, `the response's ${v}`);
        }
        case 'subset':
            return match(v, actual, where, ctx, { subset: true });
        case 'exact':
            return match(v, actual, where, ctx, { subset: false });
        case 'jsonOf': {
            if (typeof actual !== 'string') return diff(`expected JSON text, got ${show(actual)}`);
            let parsed;
            try {
                parsed = JSON.parse(actual);
            } catch {
                return diff(`expected JSON text, got ${show(actual)}`);
            }
            return match(v, parsed, `${where}<json>`, ctx);
        }
        case 'anyOf': {
            for (const option of v) {
                const sub = { ...ctx, diffs: [] };
                match(option, actual, where, sub);
                if (sub.diffs.length === 0) return;
            }
            return diff(`expected any of ${show(v)}, got ${show(actual)}`);
        }
        default:
            return diff(`unknown matcher ${kind}`);
    }
}

// Fields of an expectation that are not compared as is.
const OBS_CONTROL = new Set(['request', 'parentName']);
const TRACE_CONTROL = new Set(['request', 'observationCount']);

function describeObservation(o) {
    return `${o.type} ${show(o.name)} id=${o.id} parent=${o.parentObservationId} trace=${o.traceId}`;
}

/** Finds the actual observation an expectation is about, by the id the contract derives. */
function locateObservation(e, index, view, responses, claimed, diffs) {
    const r = e.request ?? 0;
    const genId = responses[r]?.genId;
    const where = `observations[${index}] (request ${r}, ${e.type ?? '?'} ${show(e.name)})`;
    const free = view.observations.filter((o) => !claimed.has(o));
    let wantId = null;
    if (genId && (e.type === 'SPAN' || e.type === 'GENERATION') && e.id === undefined) {
        wantId = e.type === 'SPAN' ? spanObservationId(genId) : generationObservationId(genId);
    }
    let found = wantId ? free.find((o) => o.id === wantId) : undefined;
    if (!found) {
        // Fall back to type and name so the other fields still get compared; the id is a diff.
        found = free.find((o) => (e.type === undefined || o.type === e.type) && (typeof e.name !== 'string' || o.name === e.name));
        if (found && wantId) {
            diffs.push(`${where}.id: expected ${wantId} (first 16 hex of sha256(${show(e.type === 'SPAN' ? `${genId}:span` : genId)})), got ${found.id}`);
        }
    }
    if (!found) {
        diffs.push(`${where}: no such observation. Observations present:\n    ${view.observations.map(describeObservation).join('\n    ')}`);
        return null;
    }
    claimed.add(found);
    return found;
}

function checkObservation(e, o, index, view, responses, diffs) {
    const r = e.request ?? 0;
    const where = `observations[${index}] (request ${r}, ${o.type} ${show(o.name)})`;
    const ctx = { diffs, genId: responses[r]?.genId, response: responses[r], request: r };
    for (const [k, v] of Object.entries(e)) {
        if (OBS_CONTROL.has(k)) continue;
        match(v, o[k], `${where}.${k}`, ctx, { subset: k === 'metadata' });
    }
    if ('parentName' in e) {
        const parent = o.parentObservationId === null ? null
            : view.observations.find((p) => p.id === o.parentObservationId && p.traceId === o.traceId);
        const parentName = o.parentObservationId === null ? null : parent ? parent.name : `<not in the trace: ${o.parentObservationId}>`;
        match(e.parentName, parentName, `${where}.parentName`, ctx);
    }
    // Times every observation must respect, whatever the case says.
    const start = Date.parse(o.startTime);
    const end = Date.parse(o.endTime);
    if (!(start <= end)) diffs.push(`${where}: startTime ${o.startTime} is after endTime ${o.endTime}`);
    const resp = responses[r];
    if (resp && (start < resp.sentAt - CLOCK_SLACK_MS || start > resp.doneAt + CLOCK_SLACK_MS)) {
        diffs.push(`${where}: startTime ${o.startTime} is not within the request (${new Date(resp.sentAt).toISOString()} .. ${new Date(resp.doneAt).toISOString()})`);
    }
    if (o.completionStartTime !== null) {
        const c = Date.parse(o.completionStartTime);
        if (c < start || c > end) diffs.push(`${where}: completionStartTime ${o.completionStartTime} is outside ${o.startTime} .. ${o.endTime}`);
    }
}

function checkTrace(e, index, view, located, responses, diffs) {
    const r = e.request ?? 0;
    const where = `traces[${index}] (request ${r})`;
    const ctx = { diffs, genId: responses[r]?.genId, response: responses[r], request: r };
    const anchor = located.find((l) => l.request === r && l.observation)?.observation;
    let t = anchor ? view.traces.find((x) => x.id === anchor.traceId) : view.traces[index];
    if (!t) {
        diffs.push(`${where}: no trace row${anchor ? ` for trace id ${anchor.traceId} (the trace of ${describeObservation(anchor)})` : ''}. ` +
            `Traces present: ${show(view.traces.map((x) => ({ id: x.id, name: x.name })))}`);
        return;
    }
    for (const [k, v] of Object.entries(e)) {
        if (TRACE_CONTROL.has(k)) continue;
        match(v, t[k], `${where}.${k}`, ctx, { subset: k === 'metadata' });
    }
    if (e.observationCount !== undefined && t.observationIds.length !== e.observationCount) {
        diffs.push(`${where}: expected ${e.observationCount} observation(s) in the trace, got ${t.observationIds.length}`);
    }
}

// ---------------------------------------------------------------------------------------------
// Running

async function startGroupStack(upstream, destination) {
    const stack = { langfuse: null, beacon: null, dir: null, earlierIds: new Map() };
    try {
        stack.langfuse = await startFakeLangfuse();
        stack.dir = await makeTempDir('beacon-golden-');
        const dataDir = path.join(stack.dir, 'data');
        await mkdir(dataDir);
        const toml = goldenGatewayConfig(upstream.url) + broadcastToml({
            flushIntervalMs: 50,
            destinations: [{
                name: 'golden-langfuse',
                url: stack.langfuse.url,
                privacyMode: destination.privacy_mode,
                transport: destination.transport,
            }],
        });
        const config = await writeConfig(stack.dir, toml);
        stack.key = await createKey(dataDir, { name: KEY_NAME });
        stack.beacon = await startBeacon({ config, dataDir, env: { FAKE_UPSTREAM_KEY: 'sk-fake-upstream-golden' } });
        return stack;
    } catch (err) {
        await stopGroupStack(stack);
        throw err;
    }
}

async function stopGroupStack(stack) {
    if (stack?.beacon) await stack.beacon.stop();
    if (stack?.langfuse) await stack.langfuse.close();
    if (stack?.dir) await removeDir(stack.dir);
}

async function runCase(c, stack, upstream) {
    stack.langfuse.reset();
    upstream.reset();
    const scripts = c.upstream === undefined ? [] : Array.isArray(c.upstream) ? c.upstream : [c.upstream];
    upstream.enqueue(...scripts.map(upstreamScript));

    const responses = [];
    for (const [i, request] of c.requests.entries()) {
        const resp = await send(stack, request, request.client ?? c.client ?? 'fetch');
        responses.push(resp);
        if ((request.client ?? c.client ?? 'fetch') === 'fetch') {
            const want = request.expectStatus ?? 200;
            assert.equal(resp.status, want, `request ${i} answered ${resp.status}, expected ${want}: ${resp.text ?? show(resp.json)}`);
        }
    }

    const expected = c.expect ?? {};
    const expObs = expected.observations ?? [];
    const expTraces = expected.traces ?? [];
    let view;
    try {
        const fresh = () => stack.langfuse.spans.filter((r) => r.kind !== 'trace-create' && !stack.earlierIds.has(r.id)).length;
        await stack.langfuse.waitFor(() => fresh() >= expObs.length, {
            timeoutMs: WAIT_TIMEOUT_MS, what: `${expObs.length} observation(s) of this case`,
        });
        view = stack.langfuse.view();
    } catch (err) {
        err.message = `${c.file}: ${err.message}\n--- beacon stderr (tail) ---\n${stack.beacon.stderr.slice(-3000)}`;
        throw err;
    }
    const diffs = [];
    // Observations of an earlier case's requests that arrived after that case ended (a late
    // duplicate, or a slow export) are named as such and left out of this case's matching.
    const stale = view.observations.filter((o) => stack.earlierIds.has(o.id));
    for (const o of stale) {
        diffs.push(`late arrival from ${stack.earlierIds.get(o.id)}: ${describeObservation(o)} (a duplicate or a late export of an earlier case)`);
    }
    if (stale.length > 0) {
        const staleSet = new Set(stale);
        view = {
            observations: view.observations.filter((o) => !staleSet.has(o)),
            traces: view.traces.filter((t) => !t.observationIds.every((id) => stack.earlierIds.has(id))),
        };
    }
    for (const r of responses) {
        if (!r.genId) continue;
        stack.earlierIds.set(generationObservationId(r.genId), c.file);
        stack.earlierIds.set(spanObservationId(r.genId), c.file);
    }
    if (view.observations.length !== expObs.length) {
        diffs.push(`expected ${expObs.length} observation(s), got ${view.observations.length}:\n    ` +
            view.observations.map(describeObservation).join('\n    '));
    }
    if (view.traces.length !== expTraces.length) {
        diffs.push(`expected ${expTraces.length} trace(s), got ${view.traces.length}: ${show(view.traces.map((t) => ({ id: t.id, name: t.name })))}`);
    }
    const claimed = new Set();
    const located = expObs.map((e, i) => ({
        request: e.request ?? 0,
        observation: locateObservation(e, i, view, responses, claimed, diffs),
    }));
    located.forEach((l, i) => {
        if (l.observation) checkObservation(expObs[i], l.observation, i, view, responses, diffs);
    });
    expTraces.forEach((e, i) => checkTrace(e, i, view, located, responses, diffs));

    const received = stack.langfuse.rawBodies.join('\n');
    for (const s of expected.rawBodiesMustNotContain ?? []) {
        if (received.includes(s)) {
            const at = received.indexOf(s);
            diffs.push(`rawBodies must not contain ${show(s)}, found at: ...${show(received.slice(Math.max(0, at - 120), at + s.length + 40))}`);
        }
    }
    for (const s of expected.rawBodiesMustContain ?? []) {
        if (!received.includes(s)) diffs.push(`rawBodies must contain ${show(s)}`);
    }
    for (const e of stack.langfuse.exports) {
        if (e.status !== null && e.status >= 400) diffs.push(`export #${e.seq} to ${e.path} was answered ${e.status}: ${e.error}`);
    }
    if (diffs.length > 0) {
        const genIds = responses.map((r, i) => `request ${i}: status ${r.status}, generation id ${r.genId}`).join('; ');
        assert.fail(`${c.file}: ${c.description}\n${genIds}\n${diffs.length} difference(s):\n  - ${diffs.join('\n  - ')}`);
    }
}

const cases = loadCases();
const groups = new Map();
for (const c of cases) {
    const key = destinationKey(c.destination);
    if (!groups.has(key)) groups.set(key, { destination: c.destination, cases: [] });
    groups.get(key).cases.push(c);
}

describe('golden Langfuse cases', { timeout: 600_000 }, () => {
    let upstream;
    before(async () => {
        upstream = await startFakeUpstream();
    });
    after(async () => {
        await upstream?.close();
    });

    test('the case directory holds at least 22 cases, each with a description and expectations', () => {
        if (process.env.GOLDEN_FILTER) return;
        assert.ok(cases.length >= 22, `only ${cases.length} cases`);
        for (const c of cases) {
            assert.equal(typeof c.description, 'string', `${c.file}: description`);
            assert.ok(Array.isArray(c.expect?.observations), `${c.file}: expect.observations`);
            assert.ok(Array.isArray(c.expect?.traces), `${c.file}: expect.traces`);
        }
    });

    for (const [key, group] of groups) {
        describe(`destination ${key}`, { timeout: 600_000 }, () => {
            let stack;
            before(async () => {
                stack = await startGroupStack(upstream, group.destination);
            });
            after(async () => {
                await stopGroupStack(stack);
            });
            for (const c of group.cases) {
                test(`${c.file}: ${c.description}`, { timeout: 60_000 }, async () => {
                    await runCase(c, stack, upstream);
                });
            }
        });
    }
});
