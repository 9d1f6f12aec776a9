// Integration tests of the management API behind Settings > Observability (docs/management_api.md):
// the Broadcast switch, destinations CRUD, Test Connection with every outcome it can report,
// Send Test Trace, health after real traffic, authentication and validation. They run the real
// `beacon` binary against a fake provider and strict fake Langfuse servers: a self-hosted one,
// an old one (no OTel endpoint), one per failure mode, and four standing in for the Langfuse
// cloud regions through [broadcast.langfuse_regions].
//
// Run: BEACON_BIN=build/src/beacon node --test tests/integration/management.test.mjs

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

import { startFakeUpstream } from '../fakes/fake_upstream.mjs';
import { startFakeLangfuse, generationObservationId, PROJECTS_PATH } from '../fakes/fake_langfuse.mjs';
import {
    makeTempDir, removeDir, writeConfig, createKey, startBeacon, gatewayConfig, postJson, pollUntil,
} from './harness.mjs';

const MODEL = 'openai/gpt-4o';
const DESTS = '/api/v1/observability/destinations';
const SWITCH = '/api/v1/observability';
const UNKNOWN_ID = 'dst_00000000deadbeef';
const MAIN_PROJECT = { id: 'proj_main', name: 'Main Project' };
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
// Test Connection has a 5 s budget; its answer must come soon after, and not long before.
const TIMEOUT_MIN_MS = 4000;
const TIMEOUT_MAX_MS = 7000;

function hex(n) {
    return randomBytes(n).toString('hex');
}

/** A fresh Langfuse-style key pair; every fake gets its own, so no key works by accident. */
function newKeys(tag) {
    return { publicKey: `pk-lf-${tag}-${hex(6)}`, secretKey: `sk-lf-${tag}-${hex(16)}` };
}

/** How the API shows a secret: "sk-lf-..." and its last 4 characters. */
function masked(secret) {
    return `sk-lf-...${secret.slice(-4)}`;
}

function stripSlash(u) {
    return typeof u === 'string' ? u.replace(/\/+$/, '') : u;
}

/** A port nothing listens on: bind one, then close it. */
async function closedPort() {
    const server = http.createServer();
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address();
    await new Promise((resolve) => server.close(resolve));
    return port;
}

async function startStack() {
    const stack = { fakes: [], responses: [], secrets: new Set() };
    try {
        stack.upstream = await startFakeUpstream();
        const fake = async (tag, opts = {}) => {
            const keys = newKeys(tag);
            const lf = await startFakeLangfuse({ ...keys, ...opts });
            lf.keys = keys;
            stack.secrets.add(keys.secretKey);
            stack.fakes.push(lf);
            return lf;
        };
        // A self-hosted Langfuse, the same server (same keys) at a second address, and an old one.
        stack.lf = await fake('main', { projects: [MAIN_PROJECT] });
        stack.lfOld = await startFakeLangfuse({ ...stack.lf.keys, version: '3.10.0', projects: [MAIN_PROJECT] });
        stack.lfOld.keys = stack.lf.keys;
        stack.fakes.push(stack.lfOld);
        // One per failure mode.
        stack.orgKeys = newKeys('org');
        stack.secrets.add(stack.orgKeys.secretKey);
        stack.lfOrg = await fake('orgsrv', { organizationKeys: stack.orgKeys });
        stack.lfHtml = await fake('html', { notLangfuse: true });
        stack.lfHang = await fake('hang', { probeMode: 'hang' });
        stack.lfClose = await fake('close', { probeMode: 'close' });
        // The Langfuse cloud regions.
        stack.regions = {};
        for (const r of ['us', 'eu', 'jp', 'hipaa']) {
            stack.regions[r] = await fake(`region-${r}`, { projects: [{ id: `proj_${r}`, name: `Cloud ${r.toUpperCase()}` }] });
        }

        stack.dir = await makeTempDir('beacon-management-');
        const dataDir = path.join(stack.dir, 'data');
        await mkdir(dataDir);
        const regionsToml = Object.entries(stack.regions).map(([r, lf]) => `${r} = "${lf.url}"`).join('\n');
        const config = await writeConfig(stack.dir, `${gatewayConfig(stack.upstream.url)}
[broadcast]
flush_interval_ms = 50

[broadcast.langfuse_regions]
${regionsToml}
`);
        stack.adminKey = await createKey(dataDir, { name: 'admin', management: true });
        stack.inferenceKey = await createKey(dataDir, { name: 'management-tests-app' });
        stack.beacon = await startBeacon({ config, dataDir, env: { FAKE_UPSTREAM_KEY: 'sk-fake-upstream-management' } });
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

/**
 * One management call; returns {status, body, text}. Every answer is kept in stack.responses so
 * that the last test can prove no secret was ever sent back. `key: null` sends no key.
 */
async function call(stack, method, urlPath, body, { key = stack.adminKey, raw } = {}) {
    const headers = {};
    if (key) headers.authorization = `Bearer ${key}`;
    let payload;
    if (raw !== undefined || body !== undefined) {
        headers['content-type'] = 'application/json';
        payload = raw ?? JSON.stringify(body);
    }
    const res = await fetch(`${stack.base}${urlPath}`, { method, headers, body: payload });
    const text = await res.text();
    stack.responses.push({ method, path: urlPath, status: res.status, text });
    let json = null;
    try {
        json = JSON.parse(text);
    } catch {
        // Left null; assertions show the text.
    }
    return { status: res.status, body: json, text };
}

function expectStatus(stack, r, status, what) {
    if (r.status !== status) {
        assert.fail(`${what}: expected HTTP ${status}, got ${r.status}: ${r.text}\n` +
            `--- beacon stderr (tail) ---\n${stack.beacon.stderr.slice(-2000)}`);
    }
}

/** A create/test body for a langfuse destination at `lf` (its own keys unless given). */
function langfuseBody(lf, { keys = lf.keys, baseUrl = lf.url, ...extra } = {}) {
    return { type: 'langfuse', ...extra, config: { publicKey: keys.publicKey, secretKey: keys.secretKey, baseUrl } };
}

/** POST .../destinations/test with an unsaved configuration; returns the test result. */
async function testUnsaved(stack, body) {
    if (typeof body?.config?.secretKey === 'string') stack.secrets.add(body.config.secretKey);
    const r = await call(stack, 'POST', `${DESTS}/test`, body);
    expectStatus(stack, r, 200, 'POST /destinations/test');
    assert.ok(r.body && typeof r.body.data === 'object', r.text);
    return r.body.data;
}

async function createDest(stack, body, what = 'create a destination') {
    if (typeof body?.config?.secretKey === 'string') stack.secrets.add(body.config.secretKey);
    const r = await call(stack, 'POST', DESTS, body);
    expectStatus(stack, r, 201, what);
    return r.body.data;
}

async function listDests(stack) {
    const r = await call(stack, 'GET', DESTS);
    expectStatus(stack, r, 200, 'GET /destinations');
    assert.ok(Array.isArray(r.body?.data), r.text);
    return r.body.data;
}

async function getDest(stack, id) {
    const r = await call(stack, 'GET', `${DESTS}/${id}`);
    expectStatus(stack, r, 200, `GET /destinations/${id}`);
    return r.body.data;
}

async function setBroadcast(stack, enabled) {
    const r = await call(stack, 'PUT', SWITCH, { enabled });
    expectStatus(stack, r, 200, `PUT ${SWITCH} ${enabled}`);
    assert.deepEqual(r.body, { data: { enabled } });
}

/** Deletes every destination, turns Broadcast off, resets every fake. */
async function cleanSlate(stack) {
    for (const d of await listDests(stack)) {
        const r = await call(stack, 'DELETE', `${DESTS}/${d.id}`);
        expectStatus(stack, r, 200, `DELETE ${d.id}`);
    }
    await setBroadcast(stack, false);
    stack.upstream.reset();
    for (const lf of stack.fakes) lf.reset();
}

function assertTestFailed(result, code, what) {
    assert.equal(result.ok, false, `${what}: ${JSON.stringify(result)}`);
    assert.equal(result.code, code, `${what}: ${JSON.stringify(result)}`);
    assert.equal(typeof result.message, 'string', `${what}: a message is required`);
    assert.ok(result.message.length > 0 && result.message.length <= 400, `${what}: an unclear message: ${JSON.stringify(result.message)}`);
}

/** A 400 validation error whose message starts with `field`. */
function assertFieldError(stack, r, field, what) {
    expectStatus(stack, r, 400, what);
    assert.equal(r.body?.error?.code, 400, r.text);
    const msg = r.body.error.message;
    assert.equal(typeof msg, 'string', r.text);
    assert.ok(msg.startsWith(field), `${what}: the message must start with "${field}", got ${JSON.stringify(msg)}`);
}

function chat(stack, content, extra = {}) {
    return postJson(`${stack.base}/api/v1/chat/completions`,
        { model: MODEL, messages: [{ role: 'user', content }], ...extra }, { key: stack.inferenceKey });
}

describe('management API', { timeout: 180_000 }, () => {
    let stack;
    before(async () => {
        stack = await startStack();
    });
    after(async () => {
        await stopStack(stack);
    });
    beforeEach(async () => {
        await cleanSlate(stack);
    });

    describe('Test Connection (unsaved configuration)', () => {
        test('ok: names the project, reports the server version and chooses OTLP; nothing is stored', async () => {
            const { lf } = stack;
            const r = await testUnsaved(stack, langfuseBody(lf));
            assert.equal(r.ok, true, JSON.stringify(r));
            assert.equal(r.projectId, MAIN_PROJECT.id);
            assert.equal(r.projectName, MAIN_PROJECT.name);
            assert.equal(r.serverVersion, '3.120.0');
            assert.equal(r.transport, 'otlp');
            assert.match(r.message, /Main Project/);
            assert.equal(r.code ?? null, null, 'a passing test has no error code');
            const probe = lf.requests.find((q) => q.path === PROJECTS_PATH);
            assert.ok(probe, 'GET /api/public/projects was not called');
            assert.equal(probe.publicKey, lf.keys.publicKey, 'projects is called with Basic auth and the public key');
            assert.deepEqual(await listDests(stack), [], 'a test stores nothing');
        });

        test('a server older than 3.22 gets the legacy ingestion transport', async () => {
            const r = await testUnsaved(stack, langfuseBody(stack.lfOld));
            assert.equal(r.ok, true, JSON.stringify(r));
            assert.equal(r.serverVersion, '3.10.0');
            assert.equal(r.transport, 'ingestion');
            assert.equal(r.projectName, MAIN_PROJECT.name);
        });

        test('versions are compared as numbers: 3.21.9 ingestion; 3.22.0, 3.100.0, 4.0.0 and an unknown version otlp', async () => {
            const lf = stack.lfOld;
            for (const [version, transport] of [['3.21.9', 'ingestion'], ['2.95.1', 'ingestion'], ['3.22.0', 'otlp'],
                ['3.100.0', 'otlp'], ['4.0.0', 'otlp'], [null, 'otlp']]) {
                lf.setVersion(version);
                const r = await testUnsaved(stack, langfuseBody(lf));
                assert.equal(r.ok, true, JSON.stringify(r));
                assert.equal(r.transport, transport, `server version ${version}: ${JSON.stringify(r)}`);
                if (version !== null) assert.equal(r.serverVersion, version);
            }
        });

        test('401 is invalid_keys; no region accepts the keys, so there is no suggestion', async () => {
            const { lf } = stack;
            const r = await testUnsaved(stack, langfuseBody(lf, { keys: { publicKey: lf.keys.publicKey, secretKey: `sk-lf-wrong-${hex(8)}` } }));
            assertTestFailed(r, 'invalid_keys', 'wrong secret');
            assert.match(r.message, /key/i);
            assert.match(r.message, /reject|invalid|not accepted|wrong/i);
            assert.equal(r.suggestedBaseUrl ?? null, null, JSON.stringify(r));
        });

        test('keys of the EU region tested against US: invalid_keys naming EU, and suggestedBaseUrl', async () => {
            const { us, eu } = stack.regions;
            const r = await testUnsaved(stack, langfuseBody(us, { keys: eu.keys }));
            assertTestFailed(r, 'invalid_keys', 'EU keys on US');
            assert.match(r.message, /\bEU\b/i, 'the message names the region that accepts the keys');
            assert.equal(stripSlash(r.suggestedBaseUrl), eu.url);
            assert.ok(eu.requests.some((q) => q.path === PROJECTS_PATH && q.publicKey === eu.keys.publicKey),
                'the EU region was probed with the keys');
        });

        test('keys of the JP region tested against EU: names JP', async () => {
            const { eu, jp } = stack.regions;
            const r = await testUnsaved(stack, langfuseBody(eu, { keys: jp.keys }));
            assertTestFailed(r, 'invalid_keys', 'JP keys on EU');
            assert.match(r.message, /\bJP\b/i);
            assert.equal(stripSlash(r.suggestedBaseUrl), jp.url);
        });

        test('keys no region accepts, tested against US: invalid_keys without a suggestion', async () => {
            const r = await testUnsaved(stack, langfuseBody(stack.regions.us, { keys: newKeys('nowhere') }));
            assertTestFailed(r, 'invalid_keys', 'unknown keys');
            assert.equal(r.suggestedBaseUrl ?? null, null, JSON.stringify(r));
        });

        test('403 is organization_key: a project key is needed', async () => {
            const r = await testUnsaved(stack, langfuseBody(stack.lfOrg, { keys: stack.orgKeys }));
            assertTestFailed(r, 'organization_key', 'organisation key');
            assert.match(r.message, /organi[sz]ation/i);
            assert.match(r.message, /project/i);
        });

        test('404 with an HTML page is not_langfuse', async () => {
            const r = await testUnsaved(stack, langfuseBody(stack.lfHtml));
            assertTestFailed(r, 'not_langfuse', 'an HTML 404');
            assert.match(r.message, /langfuse/i);
            assert.match(r.message, /not|n't/i);
        });

        test('a server that never answers is timeout, reported within the 5 s budget', async () => {
            const t0 = performance.now();
            const r = await testUnsaved(stack, langfuseBody(stack.lfHang));
            const ms = performance.now() - t0;
            assertTestFailed(r, 'timeout', 'a hanging server');
            assert.match(r.message, /time(d)?[ -]?out|no answer/i);
            assert.ok(ms >= TIMEOUT_MIN_MS, `the timeout came after ${ms.toFixed(0)} ms, before the 5 s budget`);
            assert.ok(ms <= TIMEOUT_MAX_MS, `the answer took ${ms.toFixed(0)} ms`);
            assert.ok(stack.lfHang.requests.some((q) => q.outcome === 'hang' || q.outcome === 'client closed'));
        });

        test('a server that closes the connection without answering is connect', async () => {
            const r = await testUnsaved(stack, langfuseBody(stack.lfClose));
            assertTestFailed(r, 'connect', 'connection closed');
            assert.match(r.message, /clos|connect/i);
            assert.ok(stack.lfClose.requests.some((q) => q.outcome === 'closed'), 'the fake was reached');
        });

        test('a closed port is connect', async () => {
            const port = await closedPort();
            const r = await testUnsaved(stack, langfuseBody(stack.lf, { baseUrl: `http://127.0.0.1:${port}` }));
            assertTestFailed(r, 'connect', 'closed port');
            assert.match(r.message, /connect|refused/i);
        });

        test('https to a server that speaks plain HTTP is tls', async () => {
            // The fake answers plain HTTP; a TLS ClientHello to it cannot complete a handshake.
            const url = stripSlash(stack.lf.url).replace('http://', 'https://');
            const r = await testUnsaved(stack, langfuseBody(stack.lf, { baseUrl: url }));
            assertTestFailed(r, 'tls', 'a TLS handshake with a plain HTTP server');
            assert.match(r.message, /TLS/);
        });

        test('a host name that does not resolve is dns', async () => {
            const t0 = performance.now();
            const r = await testUnsaved(stack, langfuseBody(stack.lf, { baseUrl: 'http://beacon-test.invalid' }));
            assertTestFailed(r, 'dns', 'an unresolvable name');
            assert.match(r.message, /resolv|not be found|cannot be found|not found|unknown host|DNS/i);
            assert.ok(performance.now() - t0 <= TIMEOUT_MAX_MS);
        });

        test('validation errors are 400 naming the field, and nothing is probed', async () => {
            const { lf } = stack;
            const good = langfuseBody(lf);
            assertFieldError(stack, await call(stack, 'POST', `${DESTS}/test`, { ...good, type: 'datadog' }), 'type', 'unknown type');
            assertFieldError(stack, await call(stack, 'POST', `${DESTS}/test`,
                { ...good, config: { ...good.config, publicKey: '' } }), 'config.publicKey', 'empty publicKey');
            assertFieldError(stack, await call(stack, 'POST', `${DESTS}/test`,
                { ...good, config: { ...good.config, baseUrl: 'ftp://example.com' } }), 'config.baseUrl', 'ftp baseUrl');
            assert.equal(lf.requests.length, 0, 'an invalid configuration must not be tried');
        });
    });

    describe('destinations', () => {
        test('a failing Test Connection refuses the save and stores nothing', async () => {
            const { lf } = stack;
            const port = await closedPort();
            const cases = [
                ['invalid_keys', langfuseBody(lf, { keys: { publicKey: lf.keys.publicKey, secretKey: `sk-lf-bad-${hex(8)}` } })],
                ['organization_key', langfuseBody(stack.lfOrg, { keys: stack.orgKeys })],
                ['not_langfuse', langfuseBody(stack.lfHtml)],
                ['connect', langfuseBody(lf, { baseUrl: `http://127.0.0.1:${port}` })],
            ];
            for (const [code, body] of cases) {
                stack.secrets.add(body.config.secretKey);
                const r = await call(stack, 'POST', DESTS, { ...body, name: `refused ${code}` });
                expectStatus(stack, r, 400, `create with a failing test (${code})`);
                assert.equal(r.body.error.code, 400, r.text);
                const t = r.body.error.metadata?.test;
                assert.ok(t, `error.metadata.test is required: ${r.text}`);
                assertTestFailed(t, code, `create refused (${code})`);
                assert.equal(r.body.error.message, t.message, 'the error message is the test\'s message');
                assert.deepEqual(await listDests(stack), [], `nothing stored after a refused create (${code})`);
            }
        });

        test('create runs Test Connection, answers 201 with the secret masked; GET one and the list show it', async () => {
            const { lf } = stack;
            const t0 = Date.now();
            const d = await createDest(stack, langfuseBody(lf, { name: 'Production Langfuse' }));
            assert.match(d.id, /^dst_[0-9a-z]+$/);
            assert.equal(d.type, 'langfuse');
            assert.equal(d.name, 'Production Langfuse');
            assert.equal(d.enabled, true);
            assert.equal(d.privacyMode, false);
            assert.equal(d.samplingRate, 1);
            assert.deepEqual(d.apiKeyIds, []);
            assert.deepEqual(d.config, { publicKey: lf.keys.publicKey, secretKey: masked(lf.keys.secretKey), baseUrl: lf.url });
            assert.equal(d.transport, 'otlp');
            assert.deepEqual(d.server, { version: '3.120.0', projectId: MAIN_PROJECT.id, projectName: MAIN_PROJECT.name });
            for (const k of ['createdAt', 'updatedAt']) {
                assert.match(d[k], ISO_RE, k);
                assert.ok(Math.abs(Date.parse(d[k]) - t0) < 60_000, `${k} ${d[k]} is not now`);
            }
            assert.equal(typeof d.health, 'object');
            for (const k of ['healthy', 'delivered', 'failed', 'retried', 'dropped', 'backlog', 'lastSuccessAt', 'lastErrorAt', 'lastError']) {
                assert.ok(k in d.health, `health.${k} is missing: ${JSON.stringify(d.health)}`);
            }
            assert.equal(d.health.delivered, 0);
            assert.ok(lf.requests.some((q) => q.path === PROJECTS_PATH), 'create must run Test Connection');

            const one = await getDest(stack, d.id);
            const { health: _h1, ...oneRest } = one;
            const { health: _h2, ...createdRest } = d;
            assert.deepEqual(oneRest, createdRest);
            const list = await listDests(stack);
            assert.deepEqual(list.map((x) => x.id), [d.id]);
            assert.equal(list[0].config.secretKey, masked(lf.keys.secretKey));
        });

        test('defaults: name "Langfuse"; the stored fields round-trip', async () => {
            const { lf } = stack;
            const d = await createDest(stack, langfuseBody(lf));
            assert.equal(d.name, 'Langfuse');
            const e = await createDest(stack, langfuseBody(lf, {
                name: 'Private', enabled: false, privacyMode: true, samplingRate: 0.25,
            }));
            assert.equal(e.enabled, false);
            assert.equal(e.privacyMode, true);
            assert.equal(e.samplingRate, 0.25);
            const again = await getDest(stack, e.id);
            assert.equal(again.privacyMode, true);
            assert.equal(again.samplingRate, 0.25);
        });

        test('a server older than 3.22 is saved with transport "ingestion"', async () => {
            const d = await createDest(stack, langfuseBody(stack.lfOld));
            assert.equal(d.transport, 'ingestion');
            assert.equal(d.server.version, '3.10.0');
        });

        test('PATCH of the name alone needs no test and keeps the secret', async () => {
            const { lf } = stack;
            const d = await createDest(stack, langfuseBody(lf, { name: 'Before' }));
            // Were Test Connection to run now, it would fail: the fake accepts other keys.
            lf.setKeys(lf.keys.publicKey, `sk-lf-elsewhere-${hex(8)}`);
            const r = await call(stack, 'PATCH', `${DESTS}/${d.id}`, { name: 'After' });
            expectStatus(stack, r, 200, 'PATCH name');
            assert.equal(r.body.data.name, 'After');
            assert.equal(r.body.data.config.secretKey, masked(lf.keys.secretKey));
            assert.equal(r.body.data.config.publicKey, lf.keys.publicKey);
            assert.ok(Date.parse(r.body.data.updatedAt) >= Date.parse(d.createdAt));
            const p2 = await call(stack, 'PATCH', `${DESTS}/${d.id}`, { privacyMode: true, samplingRate: 0.5, enabled: false });
            expectStatus(stack, p2, 200, 'PATCH flags');
            assert.equal(p2.body.data.privacyMode, true);
            assert.equal(p2.body.data.samplingRate, 0.5);
            assert.equal(p2.body.data.enabled, false);
            assert.equal(p2.body.data.name, 'After', 'fields left out keep their values');
            lf.setKeys(lf.keys.publicKey, lf.keys.secretKey);
            const t = await call(stack, 'POST', `${DESTS}/${d.id}/test`);
            expectStatus(stack, t, 200, 'test the saved destination');
            assert.equal(t.body.data.ok, true, `the stored secret was lost: ${t.text}`);
            assert.equal(t.body.data.projectName, MAIN_PROJECT.name);
        });

        test('PATCH with a wrong secretKey is refused (400) and the stored secret still works', async () => {
            const { lf } = stack;
            const d = await createDest(stack, langfuseBody(lf));
            const wrong = `sk-lf-wrong-${hex(8)}`;
            stack.secrets.add(wrong);
            const r = await call(stack, 'PATCH', `${DESTS}/${d.id}`, { config: { secretKey: wrong } });
            expectStatus(stack, r, 400, 'PATCH a wrong secret');
            assertTestFailed(r.body.error.metadata?.test ?? {}, 'invalid_keys', 'PATCH a wrong secret');
            const after = await getDest(stack, d.id);
            assert.equal(after.config.secretKey, masked(lf.keys.secretKey));
            const t = await call(stack, 'POST', `${DESTS}/${d.id}/test`);
            assert.equal(t.body?.data?.ok, true, t.text);
        });

        test('PATCH rotating the secretKey tests the new one and stores it', async () => {
            const { lf } = stack;
            const d = await createDest(stack, langfuseBody(lf));
            const rotated = `sk-lf-rotated-${hex(16)}`;
            stack.secrets.add(rotated);
            lf.setKeys(lf.keys.publicKey, rotated);
            const stale = await call(stack, 'POST', `${DESTS}/${d.id}/test`);
            expectStatus(stack, stale, 200, 'test with the old stored secret');
            assertTestFailed(stale.body.data, 'invalid_keys', 'the stored secret after rotation');
            const r = await call(stack, 'PATCH', `${DESTS}/${d.id}`, { config: { secretKey: rotated } });
            expectStatus(stack, r, 200, 'PATCH the rotated secret');
            assert.equal(r.body.data.config.secretKey, masked(rotated));
            const t = await call(stack, 'POST', `${DESTS}/${d.id}/test`);
            assert.equal(t.body?.data?.ok, true, t.text);
        });

        test('PATCH of the baseUrl re-tests: to an old server it switches to ingestion; to a bad URL it is refused', async () => {
            const { lf, lfOld } = stack;
            const d = await createDest(stack, langfuseBody(lf));
            const bad = await call(stack, 'PATCH', `${DESTS}/${d.id}`, { config: { baseUrl: stack.lfHtml.url } });
            expectStatus(stack, bad, 400, 'PATCH baseUrl to a non-Langfuse host');
            assertTestFailed(bad.body.error.metadata?.test ?? {}, 'not_langfuse', 'PATCH baseUrl');
            assert.equal((await getDest(stack, d.id)).config.baseUrl, lf.url, 'a refused PATCH stores nothing');

            const r = await call(stack, 'PATCH', `${DESTS}/${d.id}`, { config: { baseUrl: lfOld.url } });
            expectStatus(stack, r, 200, 'PATCH baseUrl to the old server');
            assert.equal(r.body.data.config.baseUrl, lfOld.url);
            assert.equal(r.body.data.config.secretKey, masked(lf.keys.secretKey), 'the secret is kept');
            assert.equal(r.body.data.transport, 'ingestion');
            assert.equal(r.body.data.server.version, '3.10.0');
            assert.ok(lfOld.requests.some((q) => q.path === PROJECTS_PATH), 'the new baseUrl was tested');

            // The trace now goes to the old server, over the legacy API.
            const s = await call(stack, 'POST', `${DESTS}/${d.id}/send-test-trace`);
            expectStatus(stack, s, 200, 'send-test-trace');
            assert.equal(s.body.data.ok, true, s.text);
            await lfOld.waitFor(() => lfOld.view().traces.some((t) => t.name === 'Beacon Test Trace'),
                { timeoutMs: 10_000, what: 'the test trace at the old server' });
            assert.ok(lfOld.exports.every((e) => e.path === '/api/public/ingestion'), lfOld.describe());
            assert.equal(lf.exports.length, 0, 'nothing goes to the old baseUrl');
        });

        test('DELETE removes it; a second DELETE and a GET are 404', async () => {
            const d = await createDest(stack, langfuseBody(stack.lf));
            const r = await call(stack, 'DELETE', `${DESTS}/${d.id}`);
            expectStatus(stack, r, 200, 'DELETE');
            assert.deepEqual(r.body, { data: { id: d.id, deleted: true } });
            expectStatus(stack, await call(stack, 'GET', `${DESTS}/${d.id}`), 404, 'GET after DELETE');
            expectStatus(stack, await call(stack, 'DELETE', `${DESTS}/${d.id}`), 404, 'DELETE twice');
            assert.deepEqual(await listDests(stack), []);
        });

        test('unknown ids are 404 on every endpoint that takes one', async () => {
            for (const [method, p, body] of [
                ['GET', `${DESTS}/${UNKNOWN_ID}`],
                ['PATCH', `${DESTS}/${UNKNOWN_ID}`, { name: 'x' }],
                ['DELETE', `${DESTS}/${UNKNOWN_ID}`],
                ['POST', `${DESTS}/${UNKNOWN_ID}/test`],
                ['POST', `${DESTS}/${UNKNOWN_ID}/send-test-trace`],
            ]) {
                const r = await call(stack, method, p, body);
                expectStatus(stack, r, 404, `${method} ${p}`);
                assert.equal(r.body?.error?.code, 404, r.text);
                assert.equal(typeof r.body.error.message, 'string');
            }
        });

        test('validation errors name the field, on create and on PATCH, and store nothing', async () => {
            const { lf } = stack;
            const good = langfuseBody(lf);
            const cfg = (patch) => ({ ...good, config: { ...good.config, ...patch } });
            const noSecret = { ...good, config: { publicKey: good.config.publicKey, baseUrl: good.config.baseUrl } };
            const cases = [
                ['type', { ...good, type: 'x' }],
                ['type', { config: good.config }],
                ['config.publicKey', cfg({ publicKey: '' })],
                ['config.publicKey', cfg({ publicKey: 42 })],
                ['config.secretKey', noSecret],
                ['config.secretKey', cfg({ secretKey: '' })],
                ['config.baseUrl', cfg({ baseUrl: 'ftp://example.com' })],
                ['config.baseUrl', cfg({ baseUrl: 'not a url' })],
                ['samplingRate', { ...good, samplingRate: 0 }],
                ['samplingRate', { ...good, samplingRate: 2 }],
                ['samplingRate', { ...good, samplingRate: '0.5' }],
                ['enabled', { ...good, enabled: 'yes' }],
                ['privacyMode', { ...good, privacyMode: 1 }],
                ['name', { ...good, name: 'n'.repeat(101) }],
                ['apiKeyIds', { ...good, apiKeyIds: ['key_doesnotexist'] }],
                ['apiKeyIds', { ...good, apiKeyIds: 'key_x' }],
            ];
            for (const [field, body] of cases) {
                const r = await call(stack, 'POST', DESTS, body);
                assertFieldError(stack, r, field, `create with a bad ${field} (${JSON.stringify(body).slice(0, 120)})`);
            }
            const type = await call(stack, 'POST', DESTS, { ...good, type: 'x' });
            assert.match(type.body.error.message, /unknown type "x"/);
            assert.deepEqual(await listDests(stack), [], 'nothing stored after validation errors');
            const junk = await call(stack, 'POST', DESTS, undefined, { raw: '{"type": "langfuse",' });
            expectStatus(stack, junk, 400, 'a body that is not JSON');

            const d = await createDest(stack, good);
            for (const [field, patch] of [['samplingRate', { samplingRate: 2 }], ['enabled', { enabled: 'no' }],
                ['config.baseUrl', { config: { baseUrl: 'ftp://example.com' } }], ['config.publicKey', { config: { publicKey: '' } }]]) {
                assertFieldError(stack, await call(stack, 'PATCH', `${DESTS}/${d.id}`, patch), field, `PATCH a bad ${field}`);
            }
            const after = await getDest(stack, d.id);
            assert.equal(after.samplingRate, 1);
            assert.equal(after.enabled, true);
            assert.equal(after.config.baseUrl, lf.url);
        });

        test('at most 5 langfuse destinations: the 6th is 400', async () => {
            for (let i = 1; i <= 5; i++) await createDest(stack, langfuseBody(stack.lf, { name: `dest ${i}` }), `destination ${i}`);
            const r = await call(stack, 'POST', DESTS, langfuseBody(stack.lf, { name: 'dest 6' }));
            assertFieldError(stack, r, 'type', 'the 6th destination');
            assert.match(r.body.error.message, /5/);
            assert.equal((await listDests(stack)).length, 5);
        });
    });

    describe('authentication', () => {
        test('an inference key is 403 and no key or an unknown key is 401 on every management endpoint; nothing changes', async () => {
            const d = await createDest(stack, langfuseBody(stack.lf));
            const endpoints = [
                ['GET', SWITCH],
                ['PUT', SWITCH, { enabled: true }],
                ['GET', DESTS],
                ['POST', DESTS, langfuseBody(stack.lf, { name: 'intruder' })],
                ['POST', `${DESTS}/test`, langfuseBody(stack.lf)],
                ['GET', `${DESTS}/${d.id}`],
                ['PATCH', `${DESTS}/${d.id}`, { name: 'hijacked' }],
                ['POST', `${DESTS}/${d.id}/test`],
                ['POST', `${DESTS}/${d.id}/send-test-trace`],
                ['DELETE', `${DESTS}/${d.id}`],
            ];
            for (const [method, p, body] of endpoints) {
                const inf = await call(stack, method, p, body, { key: stack.inferenceKey });
                expectStatus(stack, inf, 403, `${method} ${p} with an inference key`);
                assert.equal(inf.body?.error?.code, 403, inf.text);
                const none = await call(stack, method, p, body, { key: null });
                expectStatus(stack, none, 401, `${method} ${p} without a key`);
                const bogus = await call(stack, method, p, body, { key: `sk-bcn-v1-${hex(24)}` });
                expectStatus(stack, bogus, 401, `${method} ${p} with an unknown key`);
            }
            const list = await listDests(stack);
            assert.deepEqual(list.map((x) => [x.id, x.name]), [[d.id, 'Langfuse']], 'refused calls changed nothing');
            assert.deepEqual((await call(stack, 'GET', SWITCH)).body, { data: { enabled: false } });
            assert.equal(stack.lf.exports.length, 0, 'a refused send-test-trace sent nothing');
        });
    });

    describe('the Broadcast switch and delivery', () => {
        test('GET/PUT /api/v1/observability', async () => {
            const g = await call(stack, 'GET', SWITCH);
            expectStatus(stack, g, 200, 'GET switch');
            assert.deepEqual(g.body, { data: { enabled: false } });
            await setBroadcast(stack, true);
            assert.deepEqual((await call(stack, 'GET', SWITCH)).body, { data: { enabled: true } });
            for (const bad of [{ enabled: 'true' }, { enabled: 1 }, {}]) {
                assertFieldError(stack, await call(stack, 'PUT', SWITCH, bad), 'enabled', `PUT ${JSON.stringify(bad)}`);
            }
            assert.deepEqual((await call(stack, 'GET', SWITCH)).body, { data: { enabled: true } }, 'a refused PUT changes nothing');
            await setBroadcast(stack, false);
            assert.deepEqual((await call(stack, 'GET', SWITCH)).body, { data: { enabled: false } });
        });

        test('send-test-trace delivers "Beacon Test Trace" straight away, even with Broadcast off', async () => {
            const { lf } = stack;
            const d = await createDest(stack, langfuseBody(lf));
            const r = await call(stack, 'POST', `${DESTS}/${d.id}/send-test-trace`);
            expectStatus(stack, r, 200, 'send-test-trace');
            assert.equal(r.body.data.ok, true, r.text);
            assert.match(r.body.data.traceId, /^[0-9a-f]{32}$/);
            const view = await lf.waitFor(() => lf.view().traces.some((t) => t.id === r.body.data.traceId),
                { timeoutMs: 10_000, what: 'the test trace', value: () => lf.view() });
            const trace = view.traces.find((t) => t.id === r.body.data.traceId);
            assert.equal(trace.name, 'Beacon Test Trace');
            const gens = view.observations.filter((o) => o.traceId === trace.id && o.type === 'GENERATION');
            assert.deepEqual(gens.map((o) => o.name), ['Test Generation']);
            for (const e of lf.exports) assert.equal(e.status, 200, lf.describe());
            assert.equal(lf.exports[0].path, '/api/public/otel/v1/traces');
        });

        test('send-test-trace that the destination refuses is 200 with ok false and a message', async () => {
            const { lf } = stack;
            const d = await createDest(stack, langfuseBody(lf));
            lf.setKeys(lf.keys.publicKey, `sk-lf-changed-${hex(8)}`);
            const r = await call(stack, 'POST', `${DESTS}/${d.id}/send-test-trace`);
            expectStatus(stack, r, 200, 'send-test-trace refused');
            assert.equal(r.body.data.ok, false, r.text);
            assert.equal(typeof r.body.data.message, 'string');
            assert.ok(r.body.data.message.length > 0);
            assert.equal(lf.spans.length, 0);
        });

        test('the test endpoint of a saved destination reports a failure too (200, ok false)', async () => {
            const { lf } = stack;
            const d = await createDest(stack, langfuseBody(lf));
            lf.setNotLangfuse(true);
            const r = await call(stack, 'POST', `${DESTS}/${d.id}/test`);
            expectStatus(stack, r, 200, 'test a saved destination');
            assertTestFailed(r.body.data, 'not_langfuse', 'saved destination on a non-Langfuse host');
        });

        test('with Broadcast on, real traffic arrives and the destination\'s health counts it', async () => {
            const { lf } = stack;
            const d = await createDest(stack, langfuseBody(lf));
            await setBroadcast(stack, true);
            const res = await chat(stack, 'health check traffic');
            assert.equal(res.status, 200, res.text);
            await lf.waitFor(() => lf.spans.some((s) => s.id === generationObservationId(res.body.id)),
                { timeoutMs: 10_000, what: 'the generation' });
            const h = await pollUntil(async () => {
                const cur = await getDest(stack, d.id);
                return cur.health.delivered >= 1 && cur.health.lastSuccessAt ? cur.health : null;
            }, { timeoutMs: 10_000, what: 'health.delivered and lastSuccessAt to update' });
            assert.equal(h.healthy, true);
            assert.match(h.lastSuccessAt, ISO_RE);
            assert.ok(Math.abs(Date.parse(h.lastSuccessAt) - Date.now()) < 60_000, `lastSuccessAt ${h.lastSuccessAt}`);
            assert.equal(h.failed, 0);
            assert.equal(h.dropped, 0);
            assert.equal(h.lastError, null);
        });

        test('with Broadcast off nothing is sent; turned on, the next request arrives', async () => {
            const { lf } = stack;
            await createDest(stack, langfuseBody(lf));
            const off = await chat(stack, 'while broadcast is off', { trace: { trace_name: 'must-not-arrive' } });
            assert.equal(off.status, 200, off.text);
            // A bounded wait: with flush_interval_ms = 50, 2 s is forty flushes.
            await assert.rejects(lf.waitFor(() => lf.exports.length > 0, { timeoutMs: 2000, what: 'any export' }),
                /timed out/, 'an export arrived while Broadcast was off');
            await setBroadcast(stack, true);
            const on = await chat(stack, 'after broadcast is on');
            assert.equal(on.status, 200, on.text);
            await lf.waitFor(() => lf.spans.some((s) => s.id === generationObservationId(on.body.id)),
                { timeoutMs: 10_000, what: 'the request sent with Broadcast on' });
            assert.equal(lf.spans.filter((s) => s.id === generationObservationId(off.body.id)).length, 0,
                'the request sent while off arrived later');
            assert.ok(!lf.rawBodies.join('\n').includes('must-not-arrive'));
        });

        test('a disabled destination gets nothing while Broadcast is on', async () => {
            const { lf } = stack;
            const lfEnabled = stack.lfOld;
            await createDest(stack, langfuseBody(lf, { enabled: false }));
            await createDest(stack, langfuseBody(lfEnabled));
            await setBroadcast(stack, true);
            const res = await chat(stack, 'to the enabled one only');
            assert.equal(res.status, 200, res.text);
            await lfEnabled.waitFor(() => lfEnabled.spans.some((s) => s.id === generationObservationId(res.body.id)),
                { timeoutMs: 10_000, what: 'the generation at the enabled destination' });
            assert.equal(lf.exports.length, 0, 'the disabled destination received an export');
        });
    });

    // Last on purpose: it reads every answer the tests above got.
    test('no answer ever carried a full secret key', () => {
        assert.ok(stack.responses.length > 50, 'the tests above ran');
        for (const secret of stack.secrets) {
            for (const r of stack.responses) {
                assert.ok(!r.text.includes(secret), `${r.method} ${r.path} (${r.status}) returned a full secret`);
            }
        }
    });
});
