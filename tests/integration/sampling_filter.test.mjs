// Integration tests of which records a workspace destination receives (docs/management_api.md):
// deterministic sampling that keeps or drops a session whole, and the API-key filter. The
// destinations are created through the management API against strict fake Langfuse servers, and
// the real `beacon` binary serves the traffic.
//
// Run: BEACON_BIN=build/src/beacon node --test tests/integration/sampling_filter.test.mjs

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

import { startFakeUpstream } from '../fakes/fake_upstream.mjs';
import { startFakeLangfuse, generationObservationId } from '../fakes/fake_langfuse.mjs';
import {
    BEACON_BIN, makeTempDir, removeDir, writeConfig, createKey, startBeacon, gatewayConfig, postJson, pollUntil,
} from './harness.mjs';

const MODEL = 'openai/gpt-4o';
const DESTS = '/api/v1/observability/destinations';
const SESSIONS = 60;
const PER_SESSION = 3;
const WITHOUT_SESSION = 20;
const SAMPLING_RATE = 0.5;
// With p = 0.5 and 60 sessions, fewer than 15 or more than 45 kept happens with probability
// about 1e-4: a failure here means the rate is not applied, not bad luck.
const KEPT_MIN = Math.ceil(SESSIONS * 0.25);
const KEPT_MAX = Math.floor(SESSIONS * 0.75);
// Requests in flight at once: enough to be quick, few enough for a 2-core machine.
const CONCURRENCY = 6;
// Sentinel sessions sent after the traffic: each is kept with p = 0.5, so the chance that none
// of them is kept is 2^-24.
const SENTINELS = 24;

function hex(n) {
    return randomBytes(n).toString('hex');
}

function run(args) {
    return new Promise((resolve, reject) => {
        execFile(BEACON_BIN, args, { timeout: 20_000 }, (err, stdout, stderr) => {
            if (err) reject(new Error(`beacon ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
            else resolve(stdout);
        });
    });
}

/**
 * Creates an inference key and returns {id, secret}. `keys create` prints
 * "Created inference key key_xxx (name). ..." before the secret, which is on its last line; when
 * no id is on the lines before it, the id is read from `keys list` by the key's name.
 */
async function createKeyWithId(dataDir, name) {
    const out = await run(['keys', 'create', '--name', name, '--data-dir', dataDir]);
    const lines = out.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
    const secret = lines.at(-1);
    if (!secret) throw new Error(`beacon keys create printed no key:\n${out}`);
    let id = lines.slice(0, -1).map((l) => /\b(key_[0-9A-Za-z]+)\b/.exec(l)?.[1]).find(Boolean);
    if (!id) {
        const list = await run(['keys', 'list', '--data-dir', dataDir]);
        const line = list.split('\n').find((l) => l.trim().split(/\s+/)[1] === name);
        id = line && /\b(key_[0-9A-Za-z]+)\b/.exec(line)?.[1];
        if (!id) throw new Error(`no id for key "${name}" in \`beacon keys list\`:\n${list}`);
    }
    return { id, secret };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool(items, limit, fn) {
    const results = new Array(items.length);
    let next = 0;
    const worker = async () => {
        while (next < items.length) {
            const i = next++;
            results[i] = await fn(items[i], i);
        }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return results;
}

async function startStack() {
    const stack = { fakes: [] };
    try {
        stack.upstream = await startFakeUpstream();
        const keysOf = (tag) => ({ publicKey: `pk-lf-${tag}-${hex(6)}`, secretKey: `sk-lf-${tag}-${hex(16)}` });
        for (const name of ['sampled', 'filtered']) {
            const keys = keysOf(name);
            const lf = await startFakeLangfuse(keys);
            lf.keys = keys;
            stack[name] = lf;
            stack.fakes.push(lf);
        }
        // The cloud regions point at a fake too, so that no test can reach the network.
        const regions = await startFakeLangfuse(keysOf('regions'));
        stack.fakes.push(regions);
        stack.dir = await makeTempDir('beacon-sampling-');
        const dataDir = path.join(stack.dir, 'data');
        await mkdir(dataDir);
        const config = await writeConfig(stack.dir, `${gatewayConfig(stack.upstream.url)}
[broadcast]
flush_interval_ms = 50

[broadcast.langfuse_regions]
us = "${regions.url}"
eu = "${regions.url}"
jp = "${regions.url}"
hipaa = "${regions.url}"
`);
        stack.adminKey = await createKey(dataDir, { name: 'admin', management: true });
        stack.keyA = await createKeyWithId(dataDir, 'app-a');
        stack.keyB = await createKeyWithId(dataDir, 'app-b');
        stack.beacon = await startBeacon({ config, dataDir, env: { FAKE_UPSTREAM_KEY: 'sk-fake-upstream-sampling' } });
        stack.base = stack.beacon.baseUrl;
        return stack;
    } catch (err) {
        await stopStack(stack);
        throw err;
    }
}

async function stopStack(stack) {
    if (stack?.beacon) await stack.beacon.stop();
    for (const lf of stack?.fakes ?? []) await lf.close();
    if (stack?.upstream) await stack.upstream.close();
    if (stack?.dir) await removeDir(stack.dir);
}

async function manage(stack, method, urlPath, body) {
    const res = await fetch(`${stack.base}${urlPath}`, {
        method,
        headers: { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
        json = JSON.parse(text);
    } catch {
        // Left null.
    }
    return { status: res.status, body: json, text };
}

async function createDestination(stack, lf, extra) {
    const r = await manage(stack, 'POST', DESTS, {
        type: 'langfuse', ...extra,
        config: { publicKey: lf.keys.publicKey, secretKey: lf.keys.secretKey, baseUrl: lf.url },
    });
    assert.equal(r.status, 201, `create a destination: ${r.text}\n${stack.beacon.stderr.slice(-2000)}`);
    return r.body.data;
}

async function chat(stack, key, content, extra = {}) {
    const r = await postJson(`${stack.base}/api/v1/chat/completions`,
        { model: MODEL, messages: [{ role: 'user', content }], ...extra }, { key });
    assert.equal(r.status, 200, r.text);
    return r.body.id;
}

function generations(lf) {
    return lf.view().observations.filter((o) => o.type === 'GENERATION');
}

/** Waits until an observation with one of these ids arrived; returns the ids that did. */
async function waitForAny(stack, lf, ids, what) {
    const set = new Set(ids);
    try {
        await lf.waitFor(() => lf.spans.some((s) => set.has(s.id)), { timeoutMs: 15_000, what });
    } catch (err) {
        err.message += `\n--- beacon stderr (tail) ---\n${stack.beacon.stderr.slice(-2000)}`;
        throw err;
    }
    return lf.spans.filter((s) => set.has(s.id)).map((s) => s.id);
}

/** Waits until the destination reports no backlog and no export to `lf` awaits its answer. */
async function waitQuiet(stack, lf, destId) {
    await pollUntil(async () => {
        const r = await manage(stack, 'GET', `${DESTS}/${destId}`);
        return r.status === 200 && r.body.data.health?.backlog === 0;
    }, { timeoutMs: 10_000, what: `destination ${destId} to report backlog 0` });
    await lf.waitFor(() => lf.exports.every((e) => e.answeredAt !== null), { timeoutMs: 10_000, what: 'exports in flight to end' });
}

describe('sampling and the API-key filter', { timeout: 240_000 }, () => {
    let stack;
    before(async () => {
        stack = await startStack();
        const r = await manage(stack, 'PUT', '/api/v1/observability', { enabled: true });
        assert.equal(r.status, 200, r.text);
    });
    after(async () => {
        await stopStack(stack);
    });

    test(`samplingRate ${SAMPLING_RATE}: every session arrives whole or not at all, and about half are kept`, async () => {
        const lf = stack.sampled;
        const dest = await createDestination(stack, lf, { name: 'sampled', samplingRate: SAMPLING_RATE });
        assert.equal(dest.samplingRate, SAMPLING_RATE);
        const run = hex(4);
        const sessionIds = Array.from({ length: SESSIONS }, (_, i) => `samp-${run}-${i}`);
        // Requests of one session are spread over time, interleaved with the others.
        const jobs = [];
        for (let round = 0; round < PER_SESSION; round++) {
            for (const s of sessionIds) jobs.push({ session: s, content: `${s} turn ${round}` });
        }
        for (let i = 0; i < WITHOUT_SESSION; i++) jobs.splice(i * 10, 0, { session: null, content: `no session ${run} ${i}` });
        const genIds = await pool(jobs, CONCURRENCY, (job) =>
            chat(stack, stack.keyA.secret, job.content, job.session ? { session_id: job.session } : {}));
        const noSessionIds = new Set(jobs.flatMap((j, i) => (j.session ? [] : [generationObservationId(genIds[i])])));

        // Everything above was submitted before these; once one of them arrived, so had the rest.
        const sentinelGens = [];
        for (let i = 0; i < SENTINELS; i++) {
            sentinelGens.push(await chat(stack, stack.keyA.secret, `sentinel ${i}`, { session_id: `sentinel-${run}-${i}` }));
        }
        await waitForAny(stack, lf, sentinelGens.map(generationObservationId), 'a sentinel session');
        await waitQuiet(stack, lf, dest.id);

        for (const e of lf.exports) assert.equal(e.status, 200, `every export is accepted:\n${lf.describe()}`);
        const gens = generations(lf);
        const perSession = new Map(sessionIds.map((s) => [s, 0]));
        for (const g of gens) {
            if (perSession.has(g.sessionId)) perSession.set(g.sessionId, perSession.get(g.sessionId) + 1);
        }
        const partial = [...perSession].filter(([, n]) => n !== 0 && n !== PER_SESSION);
        assert.deepEqual(partial, [], `sessions must be kept or dropped whole (session, generations arrived)`);
        const kept = [...perSession.values()].filter((n) => n === PER_SESSION).length;
        assert.ok(kept >= KEPT_MIN && kept <= KEPT_MAX,
            `${kept} of ${SESSIONS} sessions kept at samplingRate ${SAMPLING_RATE}; expected ${KEPT_MIN}..${KEPT_MAX}`);

        // Requests without a session are sampled one by one (by generation id).
        const loose = gens.filter((g) => noSessionIds.has(g.id));
        for (const g of loose) assert.equal(g.sessionId, null);
        assert.ok(loose.length >= 1 && loose.length <= WITHOUT_SESSION - 1,
            `${loose.length} of ${WITHOUT_SESSION} requests without a session kept; sampling must apply to them too`);
        // Nothing arrived twice.
        const ids = gens.map((g) => g.id);
        assert.equal(new Set(ids).size, ids.length, 'a generation arrived twice');
    });

    test('apiKeyIds [A]: A\'s traffic reaches the destination, B\'s never does', async () => {
        const lf = stack.filtered;
        const dest = await createDestination(stack, lf, { name: 'only A', apiKeyIds: [stack.keyA.id] });
        assert.deepEqual(dest.apiKeyIds, [stack.keyA.id]);
        const fromB = [];
        for (let i = 0; i < 5; i++) fromB.push(await chat(stack, stack.keyB.secret, `from B ${i}`));
        const fromA = [];
        for (let i = 0; i < 3; i++) fromA.push(await chat(stack, stack.keyA.secret, `from A ${i}`));
        // B's requests were submitted first: once every one of A's arrived, B's would have too.
        for (const g of fromA) await waitForAny(stack, lf, [generationObservationId(g)], `A's generation ${g}`);
        await waitQuiet(stack, lf, dest.id);
        const arrived = new Set(lf.spans.map((s) => s.id));
        for (const g of fromB) assert.ok(!arrived.has(generationObservationId(g)), `B's generation ${g} reached the destination`);
        assert.ok(!lf.rawBodies.join('\n').includes('from B'), 'B\'s content reached the destination');
        assert.equal(generations(lf).filter((g) => fromA.map(generationObservationId).includes(g.id)).length, 3);
    });
});
