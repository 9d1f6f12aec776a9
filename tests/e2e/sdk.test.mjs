// End-to-end tests: the official `openai` and `@openrouter/sdk` clients, unmodified, talking to
// the real Beacon binary in front of the fake provider. These catch what hand-written HTTP tests
// cannot: fields an SDK requires (its response schemas are strict), SSE framing it chokes on, and
// error shapes it cannot map to its error classes.
//
// Run: (cd tests/e2e && npm ci) && BEACON_BIN=build/src/beacon node --test tests/e2e/

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import OpenAI, { AuthenticationError, NotFoundError } from 'openai';
import { OpenRouter } from '@openrouter/sdk';
import { UnauthorizedResponseError, NotFoundResponseError } from '@openrouter/sdk/models/errors';

import { startFakeUpstream, DEFAULT_CONTENT } from '../fakes/fake_upstream.mjs';
import { makeTempDir, removeDir, writeConfig, createKey, startBeacon, gatewayConfig } from '../integration/harness.mjs';

const MODEL = 'openai/gpt-4o';
const MESSAGES = [{ role: 'user', content: 'Say hello.' }];
const EXPECTED_COST = 12 * 0.0000025 + 5 * 0.00001;
const BEACON_ONLY_FIELDS = ['user', 'session_id', 'trace'];

function assertClose(actual, expected, what) {
    assert.equal(typeof actual, 'number', `${what} must be a number, got ${JSON.stringify(actual)}`);
    assert.ok(Math.abs(actual - expected) <= 1e-12, `${what}: expected ${expected}, got ${actual}`);
}

describe('official SDKs against Beacon', { timeout: 60_000 }, () => {
    let fake;
    let beacon;
    let dir;
    let key;

    before(async () => {
        fake = await startFakeUpstream();
        dir = await makeTempDir();
        const dataDir = path.join(dir, 'data');
        await mkdir(dataDir);
        const config = await writeConfig(dir, gatewayConfig(fake.url));
        key = await createKey(dataDir, { name: 'e2e-sdk' });
        beacon = await startBeacon({ config, dataDir, env: { FAKE_UPSTREAM_KEY: 'sk-fake-upstream-e2e' } });
    });
    after(async () => {
        if (beacon) await beacon.stop();
        if (fake) await fake.close();
        if (dir) await removeDir(dir);
    });
    beforeEach(() => fake.reset());

    /** Beacon-only attribution fields must be accepted by Beacon and kept from the provider. */
    async function assertNotForwarded() {
        const [up] = await fake.waitForRequests(1);
        assert.equal(up.body.model, 'gpt-4o');
        for (const f of BEACON_ONLY_FIELDS) assert.ok(!(f in up.body), `${f} must not reach the provider`);
    }

    describe('openai', () => {
        // Retries would turn an expected 4xx/5xx into several requests and slow failures down.
        const client = () => new OpenAI({ baseURL: `${beacon.baseUrl}/api/v1`, apiKey: key, maxRetries: 0 });

        test('chat completion', async () => {
            const { data, response } = await client().chat.completions.create({
                model: MODEL,
                messages: MESSAGES,
                user: 'e2e-user-1',
                // Not in the OpenAI types; the SDK sends extra body fields as they are.
                session_id: 'e2e-session-1',
                trace: { trace_name: 'e2e openai', feature: 'sdk' },
            }).withResponse();
            assert.equal(data.choices[0].message.content, DEFAULT_CONTENT);
            assert.equal(data.choices[0].finish_reason, 'stop');
            assert.equal(data.model, MODEL);
            assert.equal(data.provider, 'FakeAI');
            assert.equal(response.headers.get('x-generation-id'), data.id);
            assert.equal(data.usage.prompt_tokens, 12);
            assert.equal(data.usage.completion_tokens, 5);
            assert.equal(data.usage.total_tokens, 17);
            assertClose(data.usage.cost, EXPECTED_COST, 'usage.cost');
            await assertNotForwarded();
        });

        test('streamed chat completion', async () => {
            const stream = await client().chat.completions.create({
                model: MODEL,
                messages: MESSAGES,
                stream: true,
                user: 'e2e-user-1',
                session_id: 'e2e-session-1',
            });
            let text = '';
            const usages = [];
            let chunkCount = 0;
            for await (const chunk of stream) {
                chunkCount += 1;
                assert.equal(chunk.model, MODEL);
                text += chunk.choices[0]?.delta?.content ?? '';
                if (chunk.usage) {
                    assert.deepEqual(chunk.choices, [], 'usage rides on a chunk with no choices');
                    usages.push(chunk.usage);
                }
            }
            assert.ok(chunkCount >= 2);
            assert.equal(text, DEFAULT_CONTENT);
            assert.equal(usages.length, 1, 'the SDK must see exactly one usage chunk');
            assert.equal(usages[0].total_tokens, 17);
            assertClose(usages[0].cost, EXPECTED_COST, 'usage.cost');
            await assertNotForwarded();
        });

        test('a bad key is an AuthenticationError (401)', async () => {
            const bad = new OpenAI({ baseURL: `${beacon.baseUrl}/api/v1`, apiKey: 'sk-or-v1-wrong', maxRetries: 0 });
            await assert.rejects(
                bad.chat.completions.create({ model: MODEL, messages: MESSAGES }),
                (err) => err instanceof AuthenticationError && err.status === 401,
            );
            assert.equal(fake.requests.length, 0);
        });

        test('an unknown model is a NotFoundError (404)', async () => {
            await assert.rejects(
                client().chat.completions.create({ model: 'nobody/no-such-model', messages: MESSAGES }),
                (err) => err instanceof NotFoundError && err.status === 404,
            );
        });
    });

    describe('@openrouter/sdk', () => {
        // The SDK retries 5xx with backoff for up to an hour by default; a test wants one try.
        const client = (apiKey = key) => new OpenRouter({
            apiKey,
            serverURL: `${beacon.baseUrl}/api/v1`,
            retryConfig: { strategy: 'none' },
        });

        test('chat.send', async () => {
            const result = await client().chat.send({
                chatRequest: {
                    model: MODEL,
                    messages: MESSAGES,
                    user: 'e2e-user-2',
                    sessionId: 'e2e-session-2',
                    trace: { traceName: 'e2e openrouter', generationName: 'hello', additionalProperties: { feature: 'sdk' } },
                },
            });
            // The SDK validates against its schema and gives camelCase fields.
            assert.equal(result.object, 'chat.completion');
            assert.equal(result.model, MODEL);
            assert.match(result.id, /^gen-\d+-[A-Za-z0-9]{20}$/);
            assert.equal(result.choices[0].message.content, DEFAULT_CONTENT);
            assert.equal(result.choices[0].finishReason, 'stop');
            assert.equal(result.usage.promptTokens, 12);
            assert.equal(result.usage.completionTokens, 5);
            assert.equal(result.usage.totalTokens, 17);
            assertClose(result.usage.cost, EXPECTED_COST, 'usage.cost');
            await assertNotForwarded();
        });

        test('chat.send with stream: true', async () => {
            const stream = await client().chat.send({
                chatRequest: { model: MODEL, messages: MESSAGES, stream: true, user: 'e2e-user-2', sessionId: 'e2e-session-2' },
            });
            let text = '';
            const usages = [];
            for await (const chunk of stream) {
                assert.equal(chunk.model, MODEL);
                text += chunk.choices[0]?.delta?.content ?? '';
                if (chunk.usage) usages.push(chunk.usage);
            }
            assert.equal(text, DEFAULT_CONTENT);
            assert.equal(usages.length, 1);
            assert.equal(usages[0].totalTokens, 17);
            assertClose(usages[0].cost, EXPECTED_COST, 'usage.cost');
            await assertNotForwarded();
        });

        test('a bad key is an UnauthorizedResponseError (401)', async () => {
            await assert.rejects(
                client('sk-or-v1-wrong').chat.send({ chatRequest: { model: MODEL, messages: MESSAGES } }),
                (err) => err instanceof UnauthorizedResponseError && err.statusCode === 401 && err.error.code === 401,
            );
        });

        test('an unknown model is a NotFoundResponseError (404)', async () => {
            await assert.rejects(
                client().chat.send({ chatRequest: { model: 'nobody/no-such-model', messages: MESSAGES } }),
                (err) => err instanceof NotFoundResponseError && err.statusCode === 404,
            );
        });
    });
});
