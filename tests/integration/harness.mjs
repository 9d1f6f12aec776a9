// Helpers for tests that run the real `beacon` binary: temporary data dirs, config files, API
// keys, a running server, and the HTTP/SSE plumbing the tests share.
//
// BEACON_BIN names the binary; a relative value is taken from the repository root (not the
// current directory), so the tests behave the same whether node runs from the root or from
// tests/e2e. Set BEACON_TEST_LOG=1 to see Beacon's stderr live while a test runs.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, writeFile, rm, access } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BEACON_BIN = path.resolve(REPO_ROOT, process.env.BEACON_BIN ?? 'build/src/beacon');

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const LISTENING_RE = /listening on (http:\/\/127\.0\.0\.1:\d+)/;
// Beacon's logs can be long; keeping only the tail bounds memory in a long test run while still
// holding the lines that explain a failure.
const MAX_CAPTURE_CHARS = 1 << 20;

// Children still running, so that a crashed test run does not leave servers behind.
const liveChildren = new Set();
process.once('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
});

async function assertBinaryExists() {
    try {
        await access(BEACON_BIN, fsConstants.X_OK);
    } catch {
        throw new Error(`Beacon binary not found or not executable: ${BEACON_BIN}. ` +
            'Build it first, or set BEACON_BIN (relative paths are taken from the repo root).');
    }
}

/** A fresh directory under the OS temp dir; remove it with removeDir(). */
export function makeTempDir(prefix = 'beacon-test-') {
    return mkdtemp(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir) {
    return rm(dir, { recursive: true, force: true });
}

/** Writes `tomlText` to DIR/beacon.toml and returns the file's path. */
export async function writeConfig(dir, tomlText) {
    const file = path.join(dir, 'beacon.toml');
    await writeFile(file, tomlText);
    return file;
}

/**
 * Runs `beacon keys create` and returns the new key, which the command prints on its last line
 * (lines before it are free for human-readable notes).
 */
export async function createKey(dataDir, { name, management = false, env = {} } = {}) {
    await assertBinaryExists();
    const args = ['keys', 'create', '--name', name];
    if (management) args.push('--management');
    args.push('--data-dir', dataDir);
    const { stdout } = await new Promise((resolve, reject) => {
        execFile(BEACON_BIN, args, { env: { ...process.env, ...env }, timeout: STARTUP_TIMEOUT_MS },
            (err, stdout, stderr) => {
                if (err) {
                    reject(new Error(`beacon ${args.join(' ')} failed: ${err.message}\n` +
                        `stdout:\n${stdout}\nstderr:\n${stderr}`));
                } else {
                    resolve({ stdout, stderr });
                }
            });
    });
    const lines = stdout.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
    if (lines.length === 0) throw new Error(`beacon ${args.join(' ')} printed no key`);
    return lines[lines.length - 1];
}

function appendCapped(current, text) {
    const next = current + text;
    return next.length > MAX_CAPTURE_CHARS ? next.slice(next.length - MAX_CAPTURE_CHARS) : next;
}

/**
 * Spawns `beacon serve` on an OS-chosen port and resolves once it prints its address.
 *
 * Returns {baseUrl, proc, exited, stop(), stderr, stdout}:
 *   exited  promise of the exit code (null when a signal killed it), settled once the process ends
 *   stop()  sends SIGTERM unless a signal was already sent, waits for exit, returns the code
 */
export async function startBeacon({ config, dataDir, env = {}, launcher = [] }) {
    await assertBinaryExists();
    const args = ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data-dir', dataDir];
    // `launcher`: a command that execs the binary, e.g. to start it under other limits.
    const argv = [...launcher, BEACON_BIN, ...args];
    const proc = spawn(argv[0], argv.slice(1), {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    liveChildren.add(proc);

    let stdoutText = '';
    let stderrText = '';
    let exitSignal = null;
    const exited = new Promise((resolve) => {
        proc.once('exit', (code, signal) => {
            liveChildren.delete(proc);
            exitSignal = signal;
            resolve(code);
        });
    });

    // Both pipes are drained for the whole life of the process: a full pipe would block Beacon's
    // logging and look like a hang.
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (text) => {
        stderrText = appendCapped(stderrText, text);
        if (process.env.BEACON_TEST_LOG) process.stderr.write(text);
    });
    proc.stdout.setEncoding('utf8');

    const baseUrl = await new Promise((resolve, reject) => {
        let pending = '';
        let settled = false;
        const finish = (fn) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            fn();
        };
        const describe = () => `\n--- stdout ---\n${stdoutText}\n--- stderr ---\n${stderrText}`;
        const timer = setTimeout(() => {
            proc.kill('SIGKILL');
            finish(() => reject(new Error(
                `beacon did not print "listening on ..." within ${STARTUP_TIMEOUT_MS} ms${describe()}`)));
        }, STARTUP_TIMEOUT_MS);
        proc.stdout.on('data', (text) => {
            stdoutText = appendCapped(stdoutText, text);
            if (settled) return;
            pending += text;
            const lines = pending.split('\n');
            pending = lines.pop();
            for (const line of lines) {
                const m = LISTENING_RE.exec(line);
                if (m) {
                    finish(() => resolve(m[1]));
                    return;
                }
            }
        });
        proc.once('error', (err) => {
            finish(() => reject(new Error(`cannot start ${BEACON_BIN}: ${err.message}`)));
        });
        exited.then((code) => {
            finish(() => reject(new Error(
                `beacon exited (code ${code}, signal ${exitSignal}) before listening${describe()}`)));
        });
    });

    return {
        baseUrl,
        proc,
        exited,
        get stderr() {
            return stderrText;
        },
        get stdout() {
            return stdoutText;
        },
        async stop() {
            if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
            // A second SIGTERM could mean "stop now" to Beacon; a test that sent one itself
            // only wants to wait.
            if (!proc.killed) proc.kill('SIGTERM');
            // The guard timer is cancelled once Beacon exits, or it would keep the test
            // process alive for its full length.
            const guard = new AbortController();
            const code = await Promise.race([
                exited,
                sleep(STOP_TIMEOUT_MS, 'timeout', { signal: guard.signal }).catch(() => undefined),
            ]);
            guard.abort();
            if (code === 'timeout') {
                proc.kill('SIGKILL');
                await exited;
                throw new Error(`beacon did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n` +
                    `--- stderr ---\n${stderrText}`);
            }
            return code;
        },
    };
}

/**
 * The gateway config every integration test uses, pointed at a fake upstream. `extraServer` is
 * added to [server]; `maxBodyBytes` replaces the 64 KiB request body limit.
 */
export function gatewayConfig(fakeUrl, { extraServer = '', maxBodyBytes = 65536 } = {}) {
    return `[server]
sse_keepalive_ms = 100
max_body_bytes = ${maxBodyBytes}
${extraServer}
[[providers]]
name = "fake"
type = "openai_compatible"
base_url = "${fakeUrl}"
api_key_env = "FAKE_UPSTREAM_KEY"
display_name = "FakeAI"
connect_timeout_ms = 1000
first_byte_timeout_ms = 1500
total_timeout_ms = 5000

[[models]]
id = "openai/gpt-4o"
provider = "fake"
upstream_model = "gpt-4o"
prompt_price = 0.0000025
completion_price = 0.00001

[[models]]
id = "backup/model"
provider = "fake"
upstream_model = "backup-model"
prompt_price = 0.000001
completion_price = 0.000002
`;
}

/**
 * POSTs JSON (or a raw string, sent as is) and returns {status, headers, body, text}, with body
 * parsed when the answer is JSON. `key: null` sends no Authorization header.
 */
export async function postJson(url, body, { key, headers = {}, signal } = {}) {
    const h = { 'content-type': 'application/json', ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    const res = await fetch(url, {
        method: 'POST',
        headers: h,
        body: typeof body === 'string' ? body : JSON.stringify(body),
        signal,
    });
    return readAnswer(res);
}

export async function getJson(url, { key, headers = {} } = {}) {
    const h = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    return readAnswer(await fetch(url, { headers: h }));
}

async function readAnswer(res) {
    const text = await res.text();
    let body = null;
    try {
        body = JSON.parse(text);
    } catch {
        // Left null; assertions on `text` will show what came back.
    }
    return { status: res.status, headers: res.headers, body, text };
}

/**
 * Reads an SSE body (a web ReadableStream, e.g. fetch's `response.body`) and yields, in arrival
 * order, {comment} for each `:` line and {data, json} for each event with data (json is the
 * parsed payload, or undefined for `[DONE]` and non-JSON data).
 */
export async function* readSse(body) {
    const decoder = new TextDecoder();
    let buffer = '';
    let dataLines = [];
    for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
            let line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (line.endsWith('\r')) line = line.slice(0, -1);
            if (line === '') {
                if (dataLines.length > 0) {
                    const data = dataLines.join('\n');
                    dataLines = [];
                    yield { data, json: parseJsonOrUndefined(data) };
                }
            } else if (line.startsWith(':')) {
                yield { comment: line.slice(1).trim() };
            } else if (line.startsWith('data:')) {
                dataLines.push(line.slice(5).replace(/^ /, ''));
            }
            // Other fields (event:, id:, retry:) carry nothing Beacon's tests look at.
        }
    }
    // A stream that ends without the final blank line still delivered its last event.
    if (dataLines.length > 0) {
        const data = dataLines.join('\n');
        yield { data, json: parseJsonOrUndefined(data) };
    }
}

function parseJsonOrUndefined(text) {
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

/** Reads a whole SSE body into an array of readSse() items. */
export async function collectSse(body) {
    const events = [];
    for await (const ev of readSse(body)) events.push(ev);
    return events;
}

/**
 * Calls `fn` until it returns a truthy value or `timeoutMs` passes. Only for state that nothing
 * announces, such as a record Beacon stores after it has already answered.
 */
export async function pollUntil(fn, { timeoutMs = 5000, intervalMs = 25, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(intervalMs);
    }
}

/** Rejects with a message naming `what` when `promise` takes longer than `ms`. */
export async function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    try {
        return await Promise.race([promise, timeout]);
    } finally {
        clearTimeout(timer);
    }
}
