// Integration tests of the `beacon broadcast` and `beacon destinations` commands
// (docs/management_api.md, "CLI"): they call the management API of a running Beacon, given by
// --url/--key or BEACON_URL/BEACON_MANAGEMENT_KEY. Exit 0 on success; otherwise non-zero with a
// one-line reason on standard error. The API is the referee: every command's effect is checked
// through it, and through a strict fake Langfuse.
//
// Run: BEACON_BIN=build/src/beacon node --test tests/integration/cli.test.mjs

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

import { startFakeLangfuse, PROJECTS_PATH } from '../fakes/fake_langfuse.mjs';
import { BEACON_BIN, makeTempDir, removeDir, writeConfig, createKey, startBeacon } from './harness.mjs';

const DESTS = '/api/v1/observability/destinations';
const PROJECT = { id: 'proj_cli', name: 'CLI Project' };
const CLI_TIMEOUT_MS = 20_000;

function hex(n) {
    return randomBytes(n).toString('hex');
}

/**
 * Runs `beacon ARGS` and resolves {code, stdout, stderr} whatever the exit code. BEACON_URL and
 * BEACON_MANAGEMENT_KEY are removed from the inherited environment; `env` adds variables.
 */
function cli(args, { env = {} } = {}) {
    const base = { ...process.env };
    delete base.BEACON_URL;
    delete base.BEACON_MANAGEMENT_KEY;
    return new Promise((resolve, reject) => {
        execFile(BEACON_BIN, args, { env: { ...base, ...env }, timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
            if (err && typeof err.code !== 'number') {
                reject(new Error(`beacon ${args.join(' ')} did not run: ${err.message}\n${stdout}\n${stderr}`));
                return;
            }
            resolve({ code: err ? err.code : 0, stdout, stderr });
        });
    });
}

function show(args, r) {
    return `beacon ${args.join(' ')}\nexit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

function lines(text) {
    return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
}

function assertOk(args, r) {
    assert.equal(r.code, 0, show(args, r));
}

/** Non-zero exit with exactly one line on stderr; returns that line. */
function assertFailsWithOneLine(args, r) {
    assert.notEqual(r.code, 0, show(args, r));
    const err = lines(r.stderr);
    assert.equal(err.length, 1, `a one-line reason on stderr is expected\n${show(args, r)}`);
    assert.ok(err[0].length >= 5, show(args, r));
    return err[0];
}

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

describe('beacon CLI: broadcast and destinations', { timeout: 180_000 }, () => {
    let lf;
    let regions;
    let dir;
    let beacon;
    let adminKey;
    let inferenceKey;
    let conn; // ['--url', ..., '--key', ...]

    async function api(method, urlPath, body) {
        const res = await fetch(`${beacon.baseUrl}${urlPath}`, {
            method,
            headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        assert.ok(res.status < 300, `${method} ${urlPath}: ${res.status} ${text}`);
        return JSON.parse(text).data;
    }

    /** `beacon destinations add langfuse` with the fake's keys unless overridden. */
    function addArgs({ publicKey = lf.keys.publicKey, secretKey = lf.keys.secretKey, baseUrl = lf.url, extra = [] } = {}) {
        return ['destinations', 'add', 'langfuse', '--public-key', publicKey, '--secret-key', secretKey,
            '--base-url', baseUrl, ...extra, ...conn];
    }

    async function add(opts) {
        const args = addArgs(opts);
        const r = await cli(args);
        assertOk(args, r);
        const id = lines(r.stdout).at(-1);
        assert.match(id ?? '', /^dst_[0-9a-z]+$/, `add must print the id alone on the last line\n${show(args, r)}`);
        return { id, r };
    }

    before(async () => {
        const keys = { publicKey: `pk-lf-cli-${hex(6)}`, secretKey: `sk-lf-cli-${hex(16)}` };
        lf = await startFakeLangfuse({ ...keys, projects: [PROJECT] });
        lf.keys = keys;
        // The cloud regions point at a fake too, so that a 401 never reaches the network.
        regions = await startFakeLangfuse({ publicKey: `pk-lf-r-${hex(6)}`, secretKey: `sk-lf-r-${hex(16)}` });
        dir = await makeTempDir('beacon-cli-');
        const dataDir = path.join(dir, 'data');
        await mkdir(dataDir);
        const config = await writeConfig(dir, `[broadcast]
flush_interval_ms = 50

[broadcast.langfuse_regions]
us = "${regions.url}"
eu = "${regions.url}"
jp = "${regions.url}"
hipaa = "${regions.url}"
`);
        adminKey = await createKey(dataDir, { name: 'admin', management: true });
        inferenceKey = await createKey(dataDir, { name: 'cli-tests-app' });
        beacon = await startBeacon({ config, dataDir });
        conn = ['--url', beacon.baseUrl, '--key', adminKey];
    });

    after(async () => {
        if (beacon) await beacon.stop();
        if (lf) await lf.close();
        if (regions) await regions.close();
        if (dir) await removeDir(dir);
    });

    beforeEach(async () => {
        for (const d of await api('GET', DESTS)) await api('DELETE', `${DESTS}/${d.id}`);
        await api('PUT', '/api/v1/observability', { enabled: false });
        lf.reset();
    });

    test('broadcast status|on|off change and report the switch', async () => {
        const statusArgs = ['broadcast', 'status', ...conn];
        const off = await cli(statusArgs);
        assertOk(statusArgs, off);
        assert.match(off.stdout, /\b(off|disabled|false)\b/i, show(statusArgs, off));

        const onArgs = ['broadcast', 'on', ...conn];
        assertOk(onArgs, await cli(onArgs));
        assert.deepEqual(await api('GET', '/api/v1/observability'), { enabled: true });
        const on = await cli(statusArgs);
        assertOk(statusArgs, on);
        assert.match(on.stdout, /\b(on|enabled|true)\b/i, show(statusArgs, on));
        assert.notEqual(on.stdout, off.stdout, 'status must read differently when on and off');

        const offArgs = ['broadcast', 'off', ...conn];
        assertOk(offArgs, await cli(offArgs));
        assert.deepEqual(await api('GET', '/api/v1/observability'), { enabled: false });
    });

    test('BEACON_URL and BEACON_MANAGEMENT_KEY stand in for --url and --key', async () => {
        const env = { BEACON_URL: beacon.baseUrl, BEACON_MANAGEMENT_KEY: adminKey };
        const onArgs = ['broadcast', 'on'];
        assertOk(onArgs, await cli(onArgs, { env }));
        assert.deepEqual(await api('GET', '/api/v1/observability'), { enabled: true });
        const d = await api('POST', DESTS, {
            type: 'langfuse', name: 'via env', config: { publicKey: lf.keys.publicKey, secretKey: lf.keys.secretKey, baseUrl: lf.url },
        });
        const listArgs = ['destinations', 'list'];
        const r = await cli(listArgs, { env });
        assertOk(listArgs, r);
        assert.ok(r.stdout.includes(d.id), show(listArgs, r));
    });

    test('destinations add prints the id; the options are stored; the secret is never printed', async () => {
        const { id, r } = await add({ extra: ['--name', 'From the CLI', '--privacy', '--sampling-rate', '0.5'] });
        assert.ok(!r.stdout.includes(lf.keys.secretKey) && !r.stderr.includes(lf.keys.secretKey), 'add printed the secret');
        const d = await api('GET', `${DESTS}/${id}`);
        assert.equal(d.type, 'langfuse');
        assert.equal(d.name, 'From the CLI');
        assert.equal(d.privacyMode, true);
        assert.equal(d.samplingRate, 0.5);
        assert.equal(d.config.publicKey, lf.keys.publicKey);
        assert.equal(d.config.baseUrl, lf.url);
        assert.equal(d.transport, 'otlp');
        assert.ok(lf.requests.some((q) => q.path === PROJECTS_PATH), 'add runs Test Connection');

        const plain = await add();
        const p = await api('GET', `${DESTS}/${plain.id}`);
        assert.equal(p.privacyMode, false, 'without --privacy, Privacy Mode is off');
        assert.equal(p.samplingRate, 1);
    });

    test('destinations add with wrong keys fails with a one-line reason and stores nothing', async () => {
        const args = addArgs({ secretKey: `sk-lf-wrong-${hex(8)}` });
        const r = await cli(args);
        const reason = assertFailsWithOneLine(args, r);
        assert.match(reason, /key|401|reject|invalid/i, 'the reason says the keys were refused');
        assert.ok(!/dst_[0-9a-z]+/.test(r.stdout), `no id is printed\n${show(args, r)}`);
        assert.deepEqual(await api('GET', DESTS), []);
    });

    test('destinations add with nothing listening at the base URL fails and stores nothing', async () => {
        const port = await closedPort();
        const args = addArgs({ baseUrl: `http://127.0.0.1:${port}` });
        assertFailsWithOneLine(args, await cli(args));
        assert.deepEqual(await api('GET', DESTS), []);
    });

    test('destinations list shows the destination with its secret masked', async () => {
        const { id } = await add({ extra: ['--name', 'Listed'] });
        const args = ['destinations', 'list', ...conn];
        const r = await cli(args);
        assertOk(args, r);
        assert.ok(r.stdout.includes(id), show(args, r));
        assert.ok(r.stdout.includes('Listed'), show(args, r));
        assert.ok(!r.stdout.includes(lf.keys.secretKey), `list printed the full secret\n${show(args, r)}`);
    });

    test('destinations test reports the project; a failing test exits non-zero with one line', async () => {
        const { id } = await add();
        const args = ['destinations', 'test', id, ...conn];
        const ok = await cli(args);
        assertOk(args, ok);
        assert.ok(ok.stdout.includes(PROJECT.name), `the project name is printed\n${show(args, ok)}`);

        lf.setKeys(lf.keys.publicKey, `sk-lf-rotated-${hex(8)}`);
        const bad = await cli(args);
        const reason = assertFailsWithOneLine(args, bad);
        assert.match(reason, /key|401|reject|invalid/i);
    });

    test('destinations send-test-trace delivers "Beacon Test Trace"', async () => {
        const { id } = await add();
        const args = ['destinations', 'send-test-trace', id, ...conn];
        const r = await cli(args);
        assertOk(args, r);
        await lf.waitFor(() => lf.view().traces.some((t) => t.name === 'Beacon Test Trace'),
            { timeoutMs: 10_000, what: 'the test trace' });
    });

    test('destinations remove deletes it; removing it again fails with one line', async () => {
        const { id } = await add();
        const args = ['destinations', 'remove', id, ...conn];
        assertOk(args, await cli(args));
        assert.deepEqual(await api('GET', DESTS), []);
        assertFailsWithOneLine(args, await cli(args));
        const unknownTest = ['destinations', 'test', id, ...conn];
        assertFailsWithOneLine(unknownTest, await cli(unknownTest));
    });

    test('no key, an inference key, or no Beacon at the URL: non-zero with one line, nothing changed', async () => {
        const port = await closedPort();
        const cases = [
            ['broadcast', 'on', '--url', beacon.baseUrl],
            ['broadcast', 'on', '--url', beacon.baseUrl, '--key', inferenceKey],
            ['broadcast', 'on', '--url', beacon.baseUrl, '--key', `sk-bcn-v1-${hex(24)}`],
            ['broadcast', 'on', '--url', `http://127.0.0.1:${port}`, '--key', adminKey],
            ['destinations', 'list', '--url', beacon.baseUrl, '--key', inferenceKey],
            addArgs().slice(0, -4).concat(['--url', beacon.baseUrl, '--key', inferenceKey]),
        ];
        for (const args of cases) assertFailsWithOneLine(args, await cli(args));
        assert.deepEqual(await api('GET', '/api/v1/observability'), { enabled: false });
        assert.deepEqual(await api('GET', DESTS), []);
    });
});
