// Integration tests of destination secrets at rest: a Langfuse secret key saved through the
// management API must appear in no byte under the data directory (the SQLite store, its WAL, the
// spool, anything else), while the public key is stored as is. The secret is encrypted under a
// master key that comes from BEACON_MASTER_KEY, or else from <dataDir>/master.key, created on
// first start with mode 0600. A restart must still be able to use the stored secret.
//
// Run: BEACON_BIN=build/src/beacon node --test tests/integration/secrets_at_rest.test.mjs

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, stat, access } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

import { startFakeLangfuse } from '../fakes/fake_langfuse.mjs';
import { makeTempDir, removeDir, writeConfig, createKey, startBeacon } from './harness.mjs';

const DESTS = '/api/v1/observability/destinations';
const DB_FILE = 'beacon.db';
const MASTER_KEY_FILE = 'master.key';

function hex(n) {
    return randomBytes(n).toString('hex');
}

/** Every regular file under `dir`, recursively, as [relativePath, bytes]. */
async function readTree(dir) {
    const out = [];
    for (const rel of await readdir(dir, { recursive: true })) {
        const full = path.join(dir, rel);
        const st = await stat(full).catch(() => null);
        if (st?.isFile()) out.push([rel, await readFile(full).catch(() => Buffer.alloc(0))]);
    }
    return out;
}

/**
 * The forms a secret could take if it were stored without real encryption: as is, without its
 * "sk-lf-" prefix, its random tail alone, base64 and hex of it, and the Basic auth header value
 * built from it.
 */
function secretForms(publicKey, secretKey) {
    const tail = secretKey.split('-').at(-1);
    return [
        ['the secret', secretKey],
        ['the secret without its prefix', secretKey.replace(/^sk-lf-/, '')],
        ['the secret\'s random part', tail],
        ['base64 of the secret', Buffer.from(secretKey).toString('base64')],
        ['hex of the secret', Buffer.from(secretKey).toString('hex')],
        ['the Basic auth credentials', Buffer.from(`${publicKey}:${secretKey}`).toString('base64')],
    ];
}

async function assertNowhere(dataDir, needles, when) {
    const files = await readTree(dataDir);
    assert.ok(files.some(([rel]) => rel === DB_FILE), `${when}: ${DB_FILE} is missing from the data directory (${files.map(([r]) => r).join(', ')})`);
    for (const [rel, bytes] of files) {
        if (rel === MASTER_KEY_FILE) continue;
        for (const [what, needle] of needles) {
            assert.ok(!bytes.includes(Buffer.from(needle)), `${when}: ${what} is in ${rel}`);
        }
    }
}

/** The bytes of the store: the database and its WAL (where recent writes live until a checkpoint). */
async function storeBytes(dataDir) {
    const parts = [];
    for (const f of [DB_FILE, `${DB_FILE}-wal`]) {
        parts.push(await readFile(path.join(dataDir, f)).catch(() => Buffer.alloc(0)));
    }
    return Buffer.concat(parts);
}

/** `sqlite3 -readonly beacon.db .dump`, or null when the sqlite3 command is not installed. */
function sqliteDump(dbPath) {
    return new Promise((resolve, reject) => {
        execFile('sqlite3', ['-readonly', dbPath, '.dump'], { maxBuffer: 64 << 20, timeout: 20_000 }, (err, stdout, stderr) => {
            if (err?.code === 'ENOENT') resolve(null);
            else if (err) reject(new Error(`sqlite3 .dump failed: ${err.message}\n${stderr}`));
            else resolve(stdout);
        });
    });
}

async function exists(p) {
    try {
        await access(p);
        return true;
    } catch {
        return false;
    }
}

describe('destination secrets at rest', { timeout: 180_000 }, () => {
    let regions;
    const fakes = [];
    const dirs = [];
    const beacons = [];

    before(async () => {
        // Children inherit this process's environment: a master key set by whoever runs the
        // tests must not turn the key-file case into the environment case.
        delete process.env.BEACON_MASTER_KEY;
        // The cloud regions point at a fake, so that no probe can reach the network.
        regions = await startFakeLangfuse({ publicKey: `pk-lf-r-${hex(6)}`, secretKey: `sk-lf-r-${hex(16)}` });
        fakes.push(regions);
    });

    after(async () => {
        for (const b of beacons) await b.stop();
        for (const f of fakes) await f.close();
        for (const d of dirs) await removeDir(d);
    });

    async function newLangfuse() {
        const keys = { publicKey: `pk-lf-atrest-${hex(8)}`, secretKey: `sk-lf-atrest-${hex(20)}` };
        const lf = await startFakeLangfuse(keys);
        lf.keys = keys;
        fakes.push(lf);
        return lf;
    }

    /** A data dir with a management key; returns {dataDir, config, adminKey, start()}. */
    async function setUp(env) {
        const dir = await makeTempDir('beacon-secrets-');
        dirs.push(dir);
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
        const adminKey = await createKey(dataDir, { name: 'admin', management: true, env });
        const start = async () => {
            const b = await startBeacon({ config, dataDir, env });
            beacons.push(b);
            return b;
        };
        return { dataDir, adminKey, start };
    }

    async function api(beacon, key, method, urlPath, body) {
        const res = await fetch(`${beacon.baseUrl}${urlPath}`, {
            method,
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        return { status: res.status, text: await res.text() };
    }

    async function createDestination(beacon, key, lf) {
        const r = await api(beacon, key, 'POST', DESTS, {
            type: 'langfuse', name: 'at rest', config: { ...lf.keys, baseUrl: lf.url },
        });
        assert.equal(r.status, 201, `create: ${r.text}\n${beacon.stderr.slice(-2000)}`);
        assert.ok(!r.text.includes(lf.keys.secretKey));
        return JSON.parse(r.text).data;
    }

    async function assertStoredSecretWorks(beacon, key, id, when) {
        const r = await api(beacon, key, 'POST', `${DESTS}/${id}/test`);
        assert.equal(r.status, 200, `${when}: ${r.text}`);
        assert.equal(JSON.parse(r.text).data.ok, true, `${when}: the stored secret no longer works: ${r.text}`);
    }

    /** The checks shared by both ways of holding the master key. */
    async function checkAtRest(t, { dataDir, beacon, lf, extraNeedles = [] }) {
        const needles = [...secretForms(lf.keys.publicKey, lf.keys.secretKey), ...extraNeedles];
        await assertNowhere(dataDir, needles, 'while running');
        assert.ok((await storeBytes(dataDir)).includes(Buffer.from(lf.keys.publicKey)),
            'the public key is not in beacon.db or its WAL: the test is not reading the store');
        for (const [what, needle] of needles) {
            assert.ok(!beacon.stdout.includes(needle) && !beacon.stderr.includes(needle), `${what} is in Beacon's output`);
        }

        assert.equal(await beacon.stop(), 0);
        // Stopped, the WAL is (usually) checkpointed into the database: check both states.
        await assertNowhere(dataDir, needles, 'after stopping');
        const dump = await sqliteDump(path.join(dataDir, DB_FILE));
        if (dump === null) {
            t.diagnostic('sqlite3 is not installed; the dump check was skipped (the raw bytes were checked)');
        } else {
            assert.ok(dump.includes(lf.keys.publicKey), 'the public key is missing from the dump');
            for (const [what, needle] of needles) assert.ok(!dump.includes(needle), `${what} is in the SQLite dump`);
        }
    }

    test('with a key file: master.key is created with mode 0600, and the secret is stored encrypted', async (t) => {
        const lf = await newLangfuse();
        const s = await setUp({});
        let beacon = await s.start();
        const keyPath = path.join(s.dataDir, MASTER_KEY_FILE);
        assert.ok(await exists(keyPath), 'master.key is created on first start');
        const st = await stat(keyPath);
        assert.equal((st.mode & 0o777).toString(8), '600', 'master.key must be readable by its owner only');
        assert.ok(st.size >= 16, `master.key holds ${st.size} bytes`);
        const keyBytes = await readFile(keyPath);

        const d = await createDestination(beacon, s.adminKey, lf);
        await checkAtRest(t, { dataDir: s.dataDir, beacon, lf });

        beacon = await s.start();
        await assertStoredSecretWorks(beacon, s.adminKey, d.id, 'after a restart');
        assert.deepEqual(await readFile(keyPath), keyBytes, 'a restart must reuse the key file, not replace it');
        assert.equal(((await stat(keyPath)).mode & 0o777).toString(8), '600');
        await beacon.stop();
    });

    test('with BEACON_MASTER_KEY: no key file is created, and the secret is stored encrypted', async (t) => {
        const lf = await newLangfuse();
        // 32 random bytes as 64 hex characters.
        const masterKey = hex(32);
        const env = { BEACON_MASTER_KEY: masterKey };
        const s = await setUp(env);
        let beacon = await s.start();
        const d = await createDestination(beacon, s.adminKey, lf);
        assert.equal(await exists(path.join(s.dataDir, MASTER_KEY_FILE)), false, 'no master.key when BEACON_MASTER_KEY is set');
        const files = (await readTree(s.dataDir)).map(([rel]) => rel);
        assert.ok(!files.some((f) => path.basename(f) === MASTER_KEY_FILE), `a key file appeared: ${files.join(', ')}`);
        await checkAtRest(t, {
            dataDir: s.dataDir, beacon, lf,
            extraNeedles: [['the master key', masterKey], ['the master key in upper case', masterKey.toUpperCase()]],
        });

        beacon = await s.start();
        await assertStoredSecretWorks(beacon, s.adminKey, d.id, 'after a restart with the same BEACON_MASTER_KEY');
        assert.equal(await exists(path.join(s.dataDir, MASTER_KEY_FILE)), false);
        await beacon.stop();
    });
});
