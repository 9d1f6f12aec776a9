// End-to-end test of the settings page (Settings > Observability) in a real headless Chromium,
// against the real Beacon binary, a fake provider and the strict fake Langfuse. It drives the
// page as a person would (labels, roles, keyboard) and checks the outcome on both sides: what
// the page shows, what the management API says, and what reaches Langfuse.
//
// The tests in this file are one scenario, run in order on one page: sign in, add a
// destination, broadcast, test it, delete it, follow a suggested region URL, sign out.
//
// Needs: the binary, `npm ci` in tests/e2e (playwright-core), and Debian's chromium
// (`apt-get install chromium`; CHROMIUM_PATH overrides /usr/bin/chromium).
// Run: BEACON_BIN=build/src/beacon node --test tests/e2e/settings_page.test.mjs
// Screenshots go to a fresh folder under the OS temp dir that the run keeps (the paths are
// printed), and are copied to $BEACON_ARTIFACTS_DIR when it is set (a relative path is taken
// from the repo root).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, copyFile, access } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';
import OpenAI from 'openai';

import { startFakeUpstream, DEFAULT_CONTENT } from '../fakes/fake_upstream.mjs';
import { startFakeLangfuse } from '../fakes/fake_langfuse.mjs';
import {
    REPO_ROOT, makeTempDir, removeDir, writeConfig, createKey, startBeacon, gatewayConfig, getJson,
} from '../integration/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
// A secret of realistic length: the API shows "sk-lf-" and the last 4 characters, which for a
// 10-character secret like "sk-lf-good" would be all of it, so Beacon masks short ones whole.
const GOOD = { publicKey: 'pk-lf-good', secretKey: 'sk-lf-good-5f0c2a9e7b31d846' };
const WRONG = { publicKey: 'pk-lf-wrong', secretKey: 'sk-lf-wrong-0000' };
const EU = { publicKey: 'pk-lf-eu', secretKey: 'sk-lf-eu-9d27e4a1c05b38f6' };
const DEST_NAME = 'E2E Langfuse';
const GENERATION_NAME = 'settings-page-e2e-generation';
// How long the page may take to show a delivery: the 5 s auto-refresh plus delivery time.
const DELIVERY_SHOWN_MS = 20_000;

describe('settings page in Chromium', { timeout: 180_000 }, () => {
    let upstream;
    let langfuse;
    let euLangfuse;
    let beacon;
    let dir;
    let artifactsDir;
    let managementKey;
    let inferenceKey;
    let context;
    let page;
    const pageErrors = [];
    const foreignRequests = [];

    // The steps build on each other: once one fails, the rest would only time out one by one,
    // so they are skipped and the first failure stands out.
    let failedStep = null;
    const step = (name, fn) => test(name, async (t) => {
        if (failedStep) {
            t.skip(`skipped: "${failedStep}" failed`);
            return;
        }
        try {
            await fn(t);
        } catch (err) {
            failedStep = name;
            throw err;
        }
    });

    const api = (p) => `${beacon.baseUrl}/api/v1/observability${p}`;
    const listDestinations = async () => {
        const res = await getJson(api('/destinations'), { key: managementKey });
        assert.equal(res.status, 200, res.text);
        return res.body.data;
    };
    const form = () => page.getByRole('form', { name: 'Add Langfuse' });
    const field = (label) => form().getByLabel(label, { exact: true });
    const formResult = () => form().getByRole('status');
    const card = (name = DEST_NAME) => page.getByRole('article', { name, exact: true });
    const fact = (name, label) => card(name).getByLabel(label, { exact: true });

    before(async () => {
        try {
            await access(CHROMIUM, fsConstants.X_OK);
        } catch {
            throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
        }
        upstream = await startFakeUpstream();
        langfuse = await startFakeLangfuse(GOOD);
        euLangfuse = await startFakeLangfuse({ ...EU, projects: [{ id: 'proj_eu', name: 'EU Project' }] });
        dir = await makeTempDir('beacon-settings-e2e-');
        // Kept after the run (unlike `dir`), so the printed screenshot paths stay valid.
        artifactsDir = await makeTempDir('beacon-settings-screenshots-');
        const dataDir = path.join(dir, 'data');
        await mkdir(dataDir);
        // Broadcast is off until the page turns it on. The cloud regions that a rejected key is
        // tried against are fakes, so no test reaches the internet; "eu" holds other keys.
        const regions = Object.entries({ us: langfuse.url, eu: euLangfuse.url, jp: langfuse.url, hipaa: langfuse.url })
            .map(([r, url]) => `${r} = "${url}"`).join('\n');
        const config = await writeConfig(dir, `${gatewayConfig(upstream.url)}
[broadcast]
flush_interval_ms = 50

[broadcast.langfuse_regions]
${regions}
`);
        managementKey = await createKey(dataDir, { name: 'e2e-settings-admin', management: true });
        inferenceKey = await createKey(dataDir, { name: 'e2e-settings-app' });
        beacon = await startBeacon({ config, dataDir, env: { FAKE_UPSTREAM_KEY: 'sk-fake-upstream-settings' } });

        // A fresh profile, so nothing cached or stored from another run can make the page pass.
        context = await chromium.launchPersistentContext(path.join(dir, 'chromium-profile'), {
            executablePath: CHROMIUM,
            headless: true,
            args: CHROMIUM_ARGS,
            viewport: { width: 1280, height: 900 },
        });
        page = context.pages()[0] ?? await context.newPage();
        page.setDefaultTimeout(15_000);
        page.on('pageerror', (err) => pageErrors.push(err.message));
        // The page must be self-contained (no CDN, no fonts from elsewhere): it works offline.
        page.on('request', (req) => {
            const url = req.url();
            if (!url.startsWith(`${beacon.baseUrl}/`) && !url.startsWith('data:')) foreignRequests.push(url);
        });
    });

    after(async () => {
        if (context) await context.close();
        if (beacon) await beacon.stop();
        if (langfuse) await langfuse.close();
        if (euLangfuse) await euLangfuse.close();
        if (upstream) await upstream.close();
        if (dir) await removeDir(dir);
    });

    step('sign in with the keyboard only', async () => {
        const res = await page.goto(`${beacon.baseUrl}/settings/observability`);
        assert.equal(res.status(), 200, 'GET /settings/observability');
        assert.match(res.headers()['content-type'] ?? '', /^text\/html/);
        const keyField = page.getByLabel('Management key', { exact: true });
        const signinStatus = page.getByRole('form', { name: 'Sign in' }).getByRole('status');

        // An inference key is refused (403) and the page says so.
        await keyField.focus();
        await page.keyboard.type(inferenceKey);
        await page.keyboard.press('Enter');
        await signinStatus.filter({ hasText: 'cannot sign in' }).waitFor();
        assert.equal(await page.getByRole('heading', { name: 'Observability', level: 1 }).isVisible(), false);

        await keyField.focus();
        await page.keyboard.press('ControlOrMeta+a');
        await page.keyboard.type(managementKey);
        await page.keyboard.press('Enter');
        const heading = page.getByRole('heading', { name: 'Observability', level: 1 });
        await heading.waitFor();
        // Focus moves to the new view, so keyboard and screen-reader users know where they are.
        assert.equal(await heading.evaluate((h) => h === document.activeElement), true);
        assert.equal(await page.getByRole('button', { name: 'Sign out' }).isVisible(), true);
        const sw = page.getByRole('switch', { name: 'Broadcast' });
        await page.waitForFunction(() => !document.querySelector('[role="switch"]').disabled);
        assert.equal(await sw.isChecked(), false, 'Broadcast starts off');
        assert.deepEqual(await listDestinations(), []);
    });

    step('add Langfuse: wrong keys are refused, the right ones are saved, a request is delivered', async () => {
        // Wrong keys: Test Connection fails in place, and Save stays unavailable.
        await field('Secret Key').fill(WRONG.secretKey);
        await field('Public Key').fill(WRONG.publicKey);
        await field('Base URL').fill(langfuse.url);
        await field('Name').fill(DEST_NAME);
        assert.equal(await field('Secret Key').getAttribute('type'), 'password');
        assert.equal(await field('Base URL').getAttribute('placeholder'), 'https://us.cloud.langfuse.com');
        assert.match(await form().innerText(), /https:\/\/cloud\.langfuse\.com/, 'the EU URL is mentioned');
        const save = form().getByRole('button', { name: 'Save', exact: true });
        const testButton = form().getByRole('button', { name: 'Test Connection' });
        assert.equal(await save.isDisabled(), true, 'Save needs a passing Test Connection first');
        await testButton.click();
        await formResult().filter({ hasText: 'Connection failed' }).waitFor();
        assert.match(await formResult().innerText(), /401/);
        assert.equal(await save.isDisabled(), true, 'Save stays unavailable after a failed test');

        // The server is the final judge: keys that pass the page's test but are rejected by the
        // time of Save (rotated in Langfuse meanwhile) are refused, the error shown, nothing kept.
        await field('Secret Key').fill(GOOD.secretKey);
        await field('Public Key').fill(GOOD.publicKey);
        await testButton.click();
        await formResult().filter({ hasText: 'Connection works' }).waitFor();
        langfuse.setKeys('pk-lf-rotated', 'sk-lf-rotated');
        await save.click();
        await formResult().filter({ hasText: 'Not saved' }).waitFor();
        assert.match(await formResult().innerText(), /401/);
        assert.equal(await save.isDisabled(), true, 'the earlier pass no longer counts');
        assert.equal(await page.locator('#destinations > li').count(), 0);
        assert.deepEqual(await listDestinations(), [], 'a refused Save stores nothing');

        // Right keys: the test passes and names the project; Save stores the destination.
        langfuse.setKeys(GOOD.publicKey, GOOD.secretKey);
        await testButton.click();
        await formResult().filter({ hasText: 'Connection works' }).waitFor();
        assert.match(await formResult().innerText(), /Test Project/);
        await save.click();
        await card().waitFor();
        const stored = await listDestinations();
        assert.equal(stored.length, 1);
        assert.equal(stored[0].name, DEST_NAME);
        assert.equal(stored[0].config.baseUrl, langfuse.url);

        // The secret shows masked only, and appears nowhere in the page.
        const masked = await fact(DEST_NAME, 'Secret key').innerText();
        assert.ok(masked.endsWith(GOOD.secretKey.slice(-4)), `masked secret ${masked}`);
        assert.ok(masked.length < GOOD.secretKey.length, `masked secret ${masked}`);
        const html = await page.content();
        for (const secret of [GOOD.secretKey, WRONG.secretKey]) {
            assert.ok(!html.includes(secret), `the page must not contain ${secret}`);
        }
        assert.equal(await fact(DEST_NAME, 'Last delivery').innerText(), 'never');
        assert.equal(await fact(DEST_NAME, 'Public key').innerText(), GOOD.publicKey);
        assert.equal(await fact(DEST_NAME, 'Base URL').innerText(), langfuse.url);

        // Broadcast on, through the switch.
        await page.getByRole('switch', { name: 'Broadcast' }).check();
        await page.getByText('Broadcast is on.').waitFor();
        const state = await getJson(api(''), { key: managementKey });
        assert.deepEqual(state.body, { data: { enabled: true } });

        // An app's request, made with the official SDK, reaches Langfuse...
        const client = new OpenAI({ baseURL: `${beacon.baseUrl}/api/v1`, apiKey: inferenceKey, maxRetries: 0 });
        const answer = await client.chat.completions.create({
            model: 'openai/gpt-4o',
            messages: [{ role: 'user', content: 'Hello from the settings page test.' }],
            trace: { generation_name: GENERATION_NAME },
        });
        assert.equal(answer.choices[0].message.content, DEFAULT_CONTENT);
        await langfuse.waitFor(
            () => langfuse.view().observations.some((o) => o.type === 'GENERATION' && o.name === GENERATION_NAME),
            { timeoutMs: 15_000, what: `the generation "${GENERATION_NAME}"` });

        // ...and the page shows the delivery (auto-refresh, no reload).
        await fact(DEST_NAME, 'Last delivery').locator('time').waitFor({ timeout: DELIVERY_SHOWN_MS });
        assert.notEqual(await fact(DEST_NAME, 'Last delivery').innerText(), 'never');
        assert.ok(Number(await fact(DEST_NAME, 'Delivered').innerText()) >= 1);
        assert.equal(await fact(DEST_NAME, 'Health').innerText(), 'Healthy');
        assert.equal(await fact(DEST_NAME, 'Dropped').innerText(), '0');

        // Screenshots: desktop, then a 360 px phone with no horizontal scrolling.
        const shots = [path.join(artifactsDir, 'settings_page.png'), path.join(artifactsDir, 'settings_page_360.png')];
        await page.screenshot({ path: shots[0], fullPage: true });
        await page.setViewportSize({ width: 360, height: 780 });
        const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
        await page.screenshot({ path: shots[1], fullPage: true });
        await page.setViewportSize({ width: 1280, height: 900 });
        const out = process.env.BEACON_ARTIFACTS_DIR ? path.resolve(REPO_ROOT, process.env.BEACON_ARTIFACTS_DIR) : null;
        if (out) await mkdir(out, { recursive: true });
        for (const shot of shots) {
            if (out) await copyFile(shot, path.join(out, path.basename(shot)));
            console.log(`screenshot: ${out ? path.join(out, path.basename(shot)) : shot}`);
        }
        assert.ok(scrollWidth <= 360, `no horizontal scroll at 360 px (scrollWidth ${scrollWidth})`);
    });

    step('Test and Send test trace on a saved destination', async () => {
        const status = card().getByRole('status');
        await card().getByRole('button', { name: 'Test', exact: true }).click();
        await status.filter({ hasText: /Test Project/ }).waitFor();

        await card().getByRole('button', { name: 'Send test trace', exact: true }).click();
        await status.filter({ hasText: 'Test trace sent' }).waitFor();
        await langfuse.waitFor(() => langfuse.view().traces.some((t) => t.name === 'Beacon Test Trace'),
            { timeoutMs: 10_000, what: 'the "Beacon Test Trace" trace' });
    });

    step('keys that stop working show the destination unhealthy, with the records it keeps', async () => {
        langfuse.setKeys('pk-lf-revoked', 'sk-lf-revoked');
        try {
            const client = new OpenAI({ baseURL: `${beacon.baseUrl}/api/v1`, apiKey: inferenceKey, maxRetries: 0 });
            await client.chat.completions.create({
                model: 'openai/gpt-4o',
                messages: [{ role: 'user', content: 'Sent while the keys are refused.' }],
            });
            const health = fact(DEST_NAME, 'Health');
            await health.filter({ hasText: /^Unhealthy: / }).waitFor({ timeout: DELIVERY_SHOWN_MS });
            assert.match(await health.innerText(), /401|credential|key/i);
            assert.match(await fact(DEST_NAME, 'Waiting').innerText(), /^1 record\(s\), /);
            assert.equal(await page.locator('.dest[data-healthy="false"]').count(), 1);
        } finally {
            langfuse.setKeys(GOOD.publicKey, GOOD.secretKey);
        }
    });

    step('delete asks for confirmation, Escape keeps the destination, confirming removes it', async () => {
        const dialog = page.getByRole('dialog', { name: 'Delete destination?' });
        const deleteButton = card().getByRole('button', { name: 'Delete', exact: true });

        await deleteButton.click();
        await dialog.waitFor();
        await page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'hidden' });
        assert.equal((await listDestinations()).length, 1, 'Escape cancels');
        assert.equal(await card().isVisible(), true);

        await deleteButton.click();
        await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
        await card().waitFor({ state: 'detached' });
        assert.deepEqual(await listDestinations(), []);
        await page.getByText('No destinations yet.').waitFor();
    });

    step('keys from another region: the page offers that region\'s URL', async () => {
        await field('Secret Key').fill(EU.secretKey);
        await field('Public Key').fill(EU.publicKey);
        await field('Base URL').fill(langfuse.url);
        await form().getByRole('button', { name: 'Test Connection' }).click();
        const use = formResult().getByRole('button', { name: `Use ${euLangfuse.url}`, exact: true });
        await use.waitFor();
        assert.match(await formResult().innerText(), /401/);
        await use.click();
        await formResult().filter({ hasText: 'Connection works' }).waitFor();
        assert.match(await formResult().innerText(), /EU Project/);
        assert.equal(await field('Base URL').inputValue(), euLangfuse.url);
        assert.equal(await form().getByRole('button', { name: 'Save', exact: true }).isEnabled(), true);
    });

    step('sign out forgets the key', async () => {
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.getByLabel('Management key', { exact: true }).waitFor();
        assert.equal(await page.evaluate(() => sessionStorage.length), 0);
        await page.reload();
        await page.getByLabel('Management key', { exact: true }).waitFor();
        assert.equal(await page.getByRole('heading', { name: 'Observability', level: 1 }).isVisible(), false);

        assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
        assert.deepEqual(foreignRequests, [], 'the page loads nothing from elsewhere');
    });
});
