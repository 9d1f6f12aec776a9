// A STRICT fake of a Langfuse server, for tests that run the real Beacon binary.
//
// It checks what the real server checks (auth, content type, gzip, the ingestion version header,
// the OTLP/JSON shape, the legacy batch schema) and answers with the real status codes and error
// bodies (see /work/shared/reference/langfuse.md sections 2, 4, 5). On top of that it rejects
// what the real server would accept but silently lose or misread (numbers for nanosecond times,
// string status codes, untyped attribute values, usage on a span, an invalid environment, ...):
// for Beacon such a payload is a bug, so the export fails loudly with 400 {"error": "<what and
// where>"} and nothing of it is recorded.
//
// What it records:
//   spans      every accepted OTLP span and every accepted legacy event, in arrival order, with
//              its raw form. Duplicates are kept, so a test can prove exactly-once delivery by
//              counting observation ids.
//   rawBodies  the decoded (gunzipped) body of every export request received, accepted or not,
//              so a privacy test can search every byte Beacon sent.
//   exports    one entry per export request: {seq, path, at, answeredAt, status, headers, gzip,
//              bodyBytes, decodedBytes, error, injected, dropped, clientClosed, accepted,
//              rejectedIds}. `at` and `answeredAt` are Unix epoch ms (fractional) on this
//              process's clock; rejectedIds lists the observation ids rejectObservations refused
//              (null when it did not act). exports[i] and rawBodies[i] are the same request.
//   ingestionItems  one entry per legacy batch item: {eventId, type, bodyId, status, attempt}.
//
// view() applies Langfuse's documented mapping (langfuse.md 4.2, 4.3, 9) and returns what the
// Langfuse UI would show: {traces, observations}. Deliberate simplifications, documented here so
// a test author knows what the view promises:
//   - modelParameters are shown as sent (the real OTel path turns booleans into strings), so
//     the OTLP and the legacy transports give the same view;
//   - trace metadata holds only `langfuse.trace.metadata` / `langfuse.trace.metadata.<key>`
//     (the real server also copies observation metadata and unmapped attributes into it);
//   - an observation id received twice appears twice (Langfuse v4 stores duplicate rows).
//
// Failure injection acts on "export requests" (POST to the OTLP or the ingestion path), before
// any check, in the order the calls were made: failNext(n, {...}) and dropConnections(n) append
// to one queue. setDelay(ms) delays every answer. A delayed answer whose client went away is
// not recorded (the client saw a failure and will resend). For outages and long faults:
//   setFailure({status, body, headers, delayMs})  a standing failure: while set, EVERY export
//              request gets that answer, before any check (wrong keys included), and is recorded
//              in `exports` with injected: true and nothing accepted. The failNext queue is not
//              consumed meanwhile. setFailure(null) restores normal answers.
//   rejectObservations(predicate)  OTLP only: an export that passes every check but holds a span
//              for which predicate(record) is truthy is answered 400 {"error": ...} as a whole and
//              nothing of it is recorded, as real Langfuse does with one bad record in a batch.
//              `record` is what `spans` would hold: {id (the hex spanId), traceId, parentId,
//              name, type, attrs (decoded attributes), span (raw), ...}. The export entry gets
//              injected: true and rejectedIds. null removes it. (Legacy: see reject207Items.)
//   pause() / resume()  pause closes the listening socket and destroys every open connection,
//              so the port refuses connections (ECONNREFUSED); exports in progress show as
//              dropped and requests in progress as 'closed'. resume() listens again on the same
//              127.0.0.1 port, so the URL a client was configured with stays valid. Records,
//              the logs and every setting survive both; reset() does not resume.
//
// Test Connection outcomes (Beacon's GET /api/public/projects and /api/public/health probes,
// langfuse.md section 5) can be produced on purpose:
//   wrong keys              401 {"message": INVALID_CREDENTIALS} (the natural answer)
//   organizationKeys        a {publicKey, secretKey} pair (or a list of them) that is an
//                           organisation key: projects answers 403 {"message": ORGANIZATION_KEY_403},
//                           the export endpoints 401 {"message": ORGANIZATION_KEY_401}
//   notLangfuse             every path (but the fake's own /_test/...) answers 404 text/html
//   probeMode               'answer' (default), 'hang' (projects/health/ready never answer; the
//                           socket stays open until the client gives up or the fake closes) or
//                           'close' (the socket is destroyed without an answer)
//   version                 what health reports; '3.10.0' is a server without the OTel endpoint,
//                           null leaves the version out of the health answer
// Each has a setter (setOrganizationKeys, setNotLangfuse, setProbeMode, setVersion, setProjects);
// reset() restores the values given to startFakeLangfuse(). `requests` logs every request
// (exports included) with its outcome, so a test can see that a probe came and how it ended.
//
// Runnable on its own:  node tests/fakes/fake_langfuse.mjs [--port N] [--server-version V]
//                       [--not-langfuse] [--probe-mode answer|hang|close]
// prints "listening on http://127.0.0.1:PORT"; GET /_test/view shows the view.

import http from 'node:http';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { listenLoopback } from './listen.mjs';

export const OTLP_PATH = '/api/public/otel/v1/traces';
export const INGESTION_PATH = '/api/public/ingestion';
export const PROJECTS_PATH = '/api/public/projects';
export const HEALTH_PATH = '/api/public/health';
export const INVALID_CREDENTIALS = "Invalid credentials. Confirm that you've configured the correct host.";
/** GET /api/public/projects with an organisation key (langfuse.md 5). */
export const ORGANIZATION_KEY_403 = 'Invalid API key. Are you using an organization key?';
/** The ingestion endpoints with an organisation key (langfuse.md 1). */
export const ORGANIZATION_KEY_401 = 'Missing projectId in scope. Are you using an organization key?';
export const PROBE_MODES = Object.freeze(['answer', 'hang', 'close']);

/** Next.js bodyParser sizeLimit "4.5mb" on the ingestion route (the `bytes` package: 1024-based). */
export const INGESTION_MAX_BYTES = Math.floor(4.5 * 1024 * 1024);
// A hard bound on what the fake reads at all, so a runaway client cannot exhaust memory.
const READ_LIMIT_BYTES = 64 * 1024 * 1024;
const DEFAULT_WAIT_TIMEOUT_MS = 10_000;

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ENV_RE = /^[a-z0-9_-]{1,40}$/;
const ISO_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const ISO_Z_OR_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
// 2000-01-01 and 2100-01-01 in ns: a time outside is a unit bug (seconds or ms sent as ns).
const MIN_NS = 946_684_800_000_000_000n;
const MAX_NS = 4_102_444_800_000_000_000n;

const OBSERVATION_TYPES = new Set(['span', 'generation', 'event', 'embedding', 'agent', 'tool', 'chain',
    'retriever', 'guardrail', 'evaluator']);
const LEVELS = new Set(['DEBUG', 'DEFAULT', 'WARNING', 'ERROR']);
const VALUE_FIELDS = new Set(['stringValue', 'intValue', 'doubleValue', 'boolValue', 'arrayValue']);
const SPAN_FIELDS = new Set(['traceId', 'spanId', 'traceState', 'parentSpanId', 'flags', 'name', 'kind',
    'startTimeUnixNano', 'endTimeUnixNano', 'attributes', 'droppedAttributesCount', 'events',
    'droppedEventsCount', 'links', 'droppedLinksCount', 'status']);
const INGESTION_TYPES = new Set(['trace-create', 'span-create', 'generation-create', 'event-create']);
const OBSERVATION_EVENT_TYPE = { 'span-create': 'SPAN', 'generation-create': 'GENERATION', 'event-create': 'EVENT' };
const ENV_KEYS = ['langfuse.environment', 'deployment.environment.name', 'deployment.environment'];
// Attributes whose stringValue must hold JSON, and which JSON kind ('object' or 'any').
const JSON_ATTRS = {
    'langfuse.observation.input': 'any',
    'langfuse.observation.output': 'any',
    'langfuse.observation.model.parameters': 'object',
    'langfuse.observation.usage_details': 'object',
    'langfuse.observation.cost_details': 'object',
    'langfuse.observation.metadata': 'object',
    'langfuse.trace.metadata': 'object',
    'langfuse.trace.input': 'any',
    'langfuse.trace.output': 'any',
};
const STRING_ATTRS = new Set(['langfuse.observation.type', 'langfuse.observation.level',
    'langfuse.observation.status_message', 'langfuse.observation.completion_start_time',
    'langfuse.observation.model.name', 'langfuse.trace.name', 'langfuse.user.id', 'user.id',
    'langfuse.session.id', 'session.id', 'langfuse.release', 'langfuse.version',
    'langfuse.observation.prompt.name', ...ENV_KEYS]);

const NOT_FOUND_HTML = '<!DOCTYPE html><html><head><meta charset="utf-8"/><title>404: This page could not be found</title></head>' +
    '<body><div id="__next"><div><h1 class="next-error-h1">404</h1><div><h2>This page could not be found.</h2></div></div></div></body></html>';

/** A validation failure: becomes 400 {"error": message}. */
class Invalid extends Error {}

function fail(where, what) {
    throw new Invalid(`${where}: ${what}`);
}

function isPlainObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function nowMs() {
    return performance.timeOrigin + performance.now();
}

function validIsoDate(s) {
    return !Number.isNaN(Date.parse(s));
}

/** The environment rule the fake enforces (langfuse.md 2.5, "gateway rule"). */
export function isValidEnvironment(v) {
    return typeof v === 'string' && ENV_RE.test(v) && !v.startsWith('langfuse');
}

function nsToIso(ns) {
    return new Date(Number(BigInt(ns) / 1_000_000n)).toISOString();
}

function shortJson(v, max = 120) {
    let s;
    try {
        s = JSON.stringify(v);
    } catch {
        s = String(v);
    }
    if (s === undefined) s = String(v);
    return s.length > max ? `${s.slice(0, max)}...` : s;
}

// ---------------------------------------------------------------------------------------------
// OTLP/JSON validation

/** Decodes one OTLP AnyValue, rejecting anything but exactly one of the five typed fields. */
function decodeAnyValue(value, where) {
    if (!isPlainObject(value)) fail(where, `value must be an object with one typed field, got ${shortJson(value)}`);
    const keys = Object.keys(value);
    if (keys.length !== 1) {
        fail(where, `value must have exactly one typed field (stringValue/intValue/doubleValue/boolValue/arrayValue), got ${shortJson(value)}`);
    }
    const [field] = keys;
    const v = value[field];
    if (!VALUE_FIELDS.has(field)) fail(where, `unsupported value field "${field}" (${shortJson(value)})`);
    switch (field) {
        case 'stringValue':
            if (typeof v !== 'string') fail(where, `stringValue must be a string, got ${shortJson(v)}`);
            return v;
        case 'intValue':
            if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
            if (typeof v === 'number' && Number.isInteger(v)) return v;
            return fail(where, `intValue must be an integer or a string of digits, got ${shortJson(v)}`);
        case 'doubleValue':
            if (typeof v !== 'number' || !Number.isFinite(v)) fail(where, `doubleValue must be a finite number, got ${shortJson(v)}`);
            return v;
        case 'boolValue':
            if (typeof v !== 'boolean') fail(where, `boolValue must be a boolean, got ${shortJson(v)}`);
            return v;
        case 'arrayValue': {
            if (!isPlainObject(v)) fail(where, `arrayValue must be an object {values: [...]}, got ${shortJson(v)}`);
            const extra = Object.keys(v).filter((k) => k !== 'values');
            if (extra.length > 0) fail(where, `arrayValue has unexpected fields ${extra.join(', ')}`);
            if (v.values === undefined) return [];
            if (!Array.isArray(v.values)) fail(where, `arrayValue.values must be an array, got ${shortJson(v.values)}`);
            return v.values.map((item, i) => decodeAnyValue(item, `${where}.arrayValue.values[${i}]`));
        }
        default:
            return fail(where, `unsupported value field "${field}"`);
    }
}

/**
 * Checks an OTLP attribute list and returns {attrs: {key: decoded}, types: {key: typed field}}.
 * Duplicate keys and prototype-polluting keys are rejected.
 */
function decodeAttributes(list, where) {
    if (!Array.isArray(list)) fail(where, `attributes must be an array, got ${shortJson(list)}`);
    const attrs = {};
    const types = {};
    list.forEach((kv, i) => {
        const w = `${where}[${i}]`;
        if (!isPlainObject(kv)) fail(w, `attribute must be an object {key, value}, got ${shortJson(kv)}`);
        if (typeof kv.key !== 'string' || kv.key.length === 0) fail(w, `attribute key must be a non-empty string, got ${shortJson(kv.key)}`);
        const key = kv.key;
        const wk = `${w} (key "${key}")`;
        if (key.split('.').some((seg) => seg === '__proto__' || seg === 'constructor' || seg === 'prototype')) {
            fail(wk, 'attribute keys with __proto__/constructor/prototype segments are dropped by Langfuse');
        }
        if (!('value' in kv)) fail(wk, 'attribute has no value (Langfuse loses the whole export on this)');
        const extra = Object.keys(kv).filter((k) => k !== 'key' && k !== 'value');
        if (extra.length > 0) fail(wk, `attribute has unexpected fields ${extra.join(', ')}`);
        if (Object.hasOwn(attrs, key)) fail(wk, 'duplicate attribute key');
        attrs[key] = decodeAnyValue(kv.value, `${wk}.value`);
        types[key] = Object.keys(kv.value)[0];
    });
    return { attrs, types };
}

function checkEnvironmentAttrs(attrs, types, where) {
    for (const k of ENV_KEYS) {
        if (!Object.hasOwn(attrs, k)) continue;
        if (types[k] !== 'stringValue') fail(where, `${k} must be a stringValue`);
        if (!isValidEnvironment(attrs[k])) {
            fail(where, `${k} ${shortJson(attrs[k])} must match ^[a-z0-9_-]{1,40}$ and not start with "langfuse"`);
        }
    }
}

function checkUsageDetails(obj, where) {
    for (const [k, v] of Object.entries(obj)) {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
            fail(where, `usage_details.${k} must be a non-negative integer, got ${shortJson(v)}`);
        }
    }
    if (!Object.hasOwn(obj, 'total')) fail(where, `usage_details must contain "total", got ${shortJson(obj)}`);
}

function checkCostDetails(obj, where) {
    for (const [k, v] of Object.entries(obj)) {
        if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
            fail(where, `cost_details.${k} must be a non-negative number, got ${shortJson(v)}`);
        }
    }
    if (!Object.hasOwn(obj, 'total')) fail(where, `cost_details must contain "total", got ${shortJson(obj)}`);
}

/** Langfuse's modelParameters type: map<string, string|number|bool|string[]|map<string,string>|null>. */
function checkModelParameters(obj, where) {
    for (const [k, v] of Object.entries(obj)) {
        const ok = v === null || ['string', 'number', 'boolean'].includes(typeof v) ||
            (Array.isArray(v) && v.every((x) => typeof x === 'string')) ||
            (isPlainObject(v) && Object.values(v).every((x) => typeof x === 'string'));
        if (!ok) fail(where, `modelParameters.${k} must be a string, number, bool, string[], map<string,string> or null, got ${shortJson(v)}`);
    }
}

/** Checks the Langfuse meaning of a span's attributes; returns the parsed JSON attributes. */
function checkLangfuseAttributes(attrs, types, where) {
    for (const k of Object.keys(attrs)) {
        if (STRING_ATTRS.has(k) && types[k] !== 'stringValue') fail(where, `${k} must be a stringValue, got ${types[k]}`);
    }
    const type = attrs['langfuse.observation.type'];
    if (type !== undefined && !OBSERVATION_TYPES.has(type)) {
        fail(where, `langfuse.observation.type ${shortJson(type)} is not one of ${[...OBSERVATION_TYPES].join('/')}`);
    }
    const level = attrs['langfuse.observation.level'];
    if (level !== undefined && !LEVELS.has(level)) fail(where, `langfuse.observation.level ${shortJson(level)} is not DEBUG/DEFAULT/WARNING/ERROR`);
    const cst = attrs['langfuse.observation.completion_start_time'];
    if (cst !== undefined && !(ISO_Z.test(cst) && validIsoDate(cst))) {
        fail(where, `langfuse.observation.completion_start_time ${shortJson(cst)} must be full ISO 8601 with 'T' and 'Z' (else Langfuse drops the generation)`);
    }
    if (attrs['langfuse.observation.prompt.name'] !== undefined && attrs['langfuse.observation.prompt.version'] === undefined) {
        fail(where, 'langfuse.observation.prompt.name without langfuse.observation.prompt.version drops the generation');
    }
    const parsed = {};
    for (const [k, kind] of Object.entries(JSON_ATTRS)) {
        if (!Object.hasOwn(attrs, k)) continue;
        if (types[k] !== 'stringValue') fail(where, `${k} must be a stringValue holding JSON, got ${types[k]}`);
        let v;
        try {
            v = JSON.parse(attrs[k]);
        } catch (err) {
            fail(where, `${k} is not valid JSON (${err.message}): ${shortJson(attrs[k])}`);
        }
        if (kind === 'object' && !isPlainObject(v)) fail(where, `${k} must hold a JSON object, got ${shortJson(v)}`);
        parsed[k] = v;
    }
    const usage = parsed['langfuse.observation.usage_details'];
    const cost = parsed['langfuse.observation.cost_details'];
    if ((usage !== undefined || cost !== undefined) && type !== 'generation') {
        fail(where, `usage_details/cost_details only belong on generation observations (this one is ${shortJson(type ?? 'span')}); Langfuse strips them`);
    }
    if (usage !== undefined) checkUsageDetails(usage, where);
    if (cost !== undefined) checkCostDetails(cost, where);
    const mp = parsed['langfuse.observation.model.parameters'];
    if (mp !== undefined) checkModelParameters(mp, where);
    if (Object.hasOwn(attrs, 'langfuse.trace.tags')) {
        const tags = attrs['langfuse.trace.tags'];
        if (types['langfuse.trace.tags'] !== 'arrayValue' || !tags.every((t) => typeof t === 'string')) {
            fail(where, `langfuse.trace.tags must be an arrayValue of stringValues, got ${shortJson(tags)}`);
        }
    }
    if (Object.hasOwn(attrs, 'langfuse.internal.as_root') && types['langfuse.internal.as_root'] !== 'boolValue') {
        fail(where, 'langfuse.internal.as_root must be a boolValue');
    }
    checkEnvironmentAttrs(attrs, types, where);
    return parsed;
}

function checkNanos(v, field, where) {
    if (typeof v !== 'string') fail(where, `${field} must be a decimal string (ns exceed 2^53), got ${shortJson(v)}`);
    if (!/^\d+$/.test(v)) fail(where, `${field} must be a decimal string of digits, got ${shortJson(v)}`);
    const n = BigInt(v);
    if (n < MIN_NS || n >= MAX_NS) fail(where, `${field} ${v} is not a plausible Unix time in nanoseconds`);
    return n;
}

/**
 * Validates a whole OTLP/JSON export and returns the spans it holds, decoded. Throws Invalid at
 * the first violation, naming it and where it is.
 */
function validateOtlp(body) {
    if (!isPlainObject(body)) fail('body', `must be an OTLP/JSON ExportTraceServiceRequest object, got ${shortJson(body)}`);
    if (!Array.isArray(body.resourceSpans)) fail('body.resourceSpans', `must be an array, got ${shortJson(body.resourceSpans)}`);
    const out = [];
    body.resourceSpans.forEach((rs, ri) => {
        const rw = `resourceSpans[${ri}]`;
        if (!isPlainObject(rs)) fail(rw, 'must be an object');
        if (!isPlainObject(rs.resource)) fail(`${rw}.resource`, `must be an object with attributes, got ${shortJson(rs.resource)}`);
        const resource = decodeAttributes(rs.resource.attributes, `${rw}.resource.attributes`);
        checkEnvironmentAttrs(resource.attrs, resource.types, `${rw}.resource.attributes`);
        for (const k of ['langfuse.release', 'langfuse.version', 'service.name', 'service.version']) {
            if (Object.hasOwn(resource.attrs, k) && resource.types[k] !== 'stringValue') {
                fail(`${rw}.resource.attributes`, `${k} must be a stringValue`);
            }
        }
        if (!Array.isArray(rs.scopeSpans)) fail(`${rw}.scopeSpans`, `must be an array, got ${shortJson(rs.scopeSpans)}`);
        rs.scopeSpans.forEach((ss, si) => {
            const sw = `${rw}.scopeSpans[${si}]`;
            if (!isPlainObject(ss)) fail(sw, 'must be an object');
            if (ss.scope !== undefined && !isPlainObject(ss.scope)) fail(`${sw}.scope`, 'must be an object');
            if (ss.scope?.name !== undefined && typeof ss.scope.name !== 'string') fail(`${sw}.scope.name`, 'must be a string');
            if (!Array.isArray(ss.spans)) fail(`${sw}.spans`, `must be an array, got ${shortJson(ss.spans)}`);
            ss.spans.forEach((span, pi) => {
                let w = `${sw}.spans[${pi}]`;
                if (!isPlainObject(span)) fail(w, 'must be an object');
                if (typeof span.spanId === 'string') w += ` (spanId ${span.spanId}, name ${shortJson(span.name, 60)})`;
                const unknown = Object.keys(span).filter((k) => !SPAN_FIELDS.has(k));
                if (unknown.length > 0) fail(w, `unknown span field(s) ${unknown.join(', ')}`);
                if (typeof span.traceId !== 'string' || !HEX32.test(span.traceId) || /^0+$/.test(span.traceId)) {
                    fail(w, `traceId must be 32 lowercase hex chars (not all zero), got ${shortJson(span.traceId)}`);
                }
                if (typeof span.spanId !== 'string' || !HEX16.test(span.spanId) || /^0+$/.test(span.spanId)) {
                    fail(w, `spanId must be 16 lowercase hex chars (not all zero), got ${shortJson(span.spanId)}`);
                }
                if (span.parentSpanId !== undefined && span.parentSpanId !== '') {
                    if (typeof span.parentSpanId !== 'string' || !HEX16.test(span.parentSpanId)) {
                        fail(w, `parentSpanId must be absent, empty or 16 lowercase hex chars, got ${shortJson(span.parentSpanId)}`);
                    }
                    if (span.parentSpanId === span.spanId) fail(w, 'parentSpanId equals spanId');
                }
                if (typeof span.name !== 'string' || span.name.length === 0) fail(w, `name must be a non-empty string, got ${shortJson(span.name)}`);
                if (span.kind !== undefined && !(Number.isInteger(span.kind) && span.kind >= 0 && span.kind <= 5)) {
                    fail(w, `kind must be an integer 0..5 (OTLP/JSON enums are integers), got ${shortJson(span.kind)}`);
                }
                const start = checkNanos(span.startTimeUnixNano, 'startTimeUnixNano', w);
                const end = checkNanos(span.endTimeUnixNano, 'endTimeUnixNano', w);
                if (start > end) fail(w, `startTimeUnixNano ${start} is after endTimeUnixNano ${end}`);
                if (span.status !== undefined) {
                    if (!isPlainObject(span.status)) fail(`${w}.status`, `must be an object, got ${shortJson(span.status)}`);
                    const { code, message } = span.status;
                    if (code !== undefined && !(Number.isInteger(code) && code >= 0 && code <= 2)) {
                        fail(`${w}.status.code`, `must be the integer 0, 1 or 2 (Langfuse reads "STATUS_CODE_ERROR" as DEFAULT), got ${shortJson(code)}`);
                    }
                    if (message !== undefined && typeof message !== 'string') fail(`${w}.status.message`, 'must be a string');
                }
                for (const k of ['events', 'links']) {
                    if (span[k] !== undefined && !Array.isArray(span[k])) fail(`${w}.${k}`, 'must be an array');
                }
                const { attrs, types } = decodeAttributes(span.attributes, `${w}.attributes`);
                const json = checkLangfuseAttributes(attrs, types, `${w}.attributes`);
                out.push({ span, attrs, json, resourceAttrs: resource.attrs, scope: ss.scope ?? null });
            });
        });
    });
    return out;
}

// ---------------------------------------------------------------------------------------------
// Legacy ingestion validation

function zodError(path, message) {
    return JSON.stringify([{ code: 'custom', path, message }]);
}

class ItemInvalid extends Error {
    constructor(path, message) {
        super(message);
        this.path = path;
    }
}

function itemFail(path, message) {
    throw new ItemInvalid(path, message);
}

function checkString(body, key, { max, required = false } = {}) {
    const v = body[key];
    if (v === undefined || v === null) {
        if (required) itemFail(['body', key], `${key} is required`);
        return;
    }
    if (typeof v !== 'string') itemFail(['body', key], `${key} must be a string, got ${shortJson(v)}`);
    if (max !== undefined && v.length > max) itemFail(['body', key], `${key} is longer than ${max} characters`);
}

function checkBodyDate(body, key) {
    const v = body[key];
    if (v === undefined || v === null) return;
    if (typeof v !== 'string' || !ISO_Z.test(v) || !validIsoDate(v)) {
        itemFail(['body', key], `${key} must be an ISO 8601 datetime with Z, got ${shortJson(v)}`);
    }
}

/** Validates one batch item; throws ItemInvalid. */
function validateIngestionEvent(ev) {
    if (!isPlainObject(ev)) itemFail([], `event must be an object, got ${shortJson(ev)}`);
    if (typeof ev.id !== 'string' || ev.id.length < 1 || ev.id.length > 800 || ev.id.includes('\r')) {
        itemFail(['id'], `id must be a string of 1-800 characters without \\r, got ${shortJson(ev.id)}`);
    }
    if (!INGESTION_TYPES.has(ev.type)) {
        itemFail(['type'], `type ${shortJson(ev.type)} is not accepted (this fake takes ${[...INGESTION_TYPES].join(', ')})`);
    }
    if (typeof ev.timestamp !== 'string' || !ISO_Z_OR_OFFSET.test(ev.timestamp) || !validIsoDate(ev.timestamp)) {
        itemFail(['timestamp'], `timestamp must be an ISO 8601 datetime with Z or an offset, got ${shortJson(ev.timestamp)}`);
    }
    const body = ev.body;
    if (!isPlainObject(body)) itemFail(['body'], `body must be an object, got ${shortJson(body)}`);
    checkString(body, 'id', { max: 800, required: true });
    if (body.id.length === 0 || body.id.includes('\r')) itemFail(['body', 'id'], 'id must be 1-800 characters without \\r');
    checkString(body, 'name', { max: 1000 });
    for (const k of ['userId', 'sessionId', 'release', 'version', 'statusMessage', 'parentObservationId', 'model', 'externalId']) {
        checkString(body, k);
    }
    if (body.metadata !== undefined && body.metadata !== null && !isPlainObject(body.metadata)) {
        itemFail(['body', 'metadata'], `metadata must be an object, got ${shortJson(body.metadata)}`);
    }
    if (body.environment !== undefined && body.environment !== null && !isValidEnvironment(body.environment)) {
        itemFail(['body', 'environment'], `environment ${shortJson(body.environment)} must match ^[a-z0-9_-]{1,40}$ and not start with "langfuse"`);
    }
    if (body.level !== undefined && body.level !== null && !LEVELS.has(body.level)) {
        itemFail(['body', 'level'], `level ${shortJson(body.level)} is not DEBUG/DEFAULT/WARNING/ERROR`);
    }
    for (const k of ['timestamp', 'startTime', 'endTime', 'completionStartTime']) checkBodyDate(body, k);
    if (body.tags !== undefined && body.tags !== null &&
        !(Array.isArray(body.tags) && body.tags.every((t) => typeof t === 'string'))) {
        itemFail(['body', 'tags'], `tags must be an array of strings, got ${shortJson(body.tags)}`);
    }
    if (ev.type !== 'trace-create') {
        checkString(body, 'traceId', { max: 800, required: true });
        if (body.startTime && body.endTime && Date.parse(body.startTime) > Date.parse(body.endTime)) {
            itemFail(['body', 'endTime'], 'endTime is before startTime');
        }
    }
    const hasUsage = body.usageDetails !== undefined && body.usageDetails !== null;
    const hasCost = body.costDetails !== undefined && body.costDetails !== null;
    if ((hasUsage || hasCost || body.usage !== undefined) && ev.type !== 'generation-create') {
        itemFail(['body', 'usageDetails'], `usage/cost details only belong on generation-create (this is ${ev.type})`);
    }
    if (body.usage !== undefined) itemFail(['body', 'usage'], 'the deprecated `usage` field is not accepted by this fake; send usageDetails/costDetails');
    try {
        if (hasUsage) {
            if (!isPlainObject(body.usageDetails)) itemFail(['body', 'usageDetails'], 'usageDetails must be an object');
            checkUsageDetails(body.usageDetails, 'body.usageDetails');
        }
        if (hasCost) {
            if (!isPlainObject(body.costDetails)) itemFail(['body', 'costDetails'], 'costDetails must be an object');
            checkCostDetails(body.costDetails, 'body.costDetails');
        }
        if (body.modelParameters !== undefined && body.modelParameters !== null) {
            if (!isPlainObject(body.modelParameters)) itemFail(['body', 'modelParameters'], 'modelParameters must be an object');
            checkModelParameters(body.modelParameters, 'body.modelParameters');
        }
    } catch (err) {
        if (err instanceof Invalid) itemFail(['body'], err.message);
        throw err;
    }
    if ((body.promptName === undefined) !== (body.promptVersion === undefined)) {
        itemFail(['body', 'promptName'], 'promptName and promptVersion go together');
    }
}

// ---------------------------------------------------------------------------------------------
// The read view

function emptyTrace(id) {
    return {
        id, name: null, userId: null, sessionId: null, environment: 'default', tags: [], release: null,
        version: null, metadata: {}, observationIds: [],
    };
}

function firstDefined(...vals) {
    for (const v of vals) if (v !== undefined && v !== null) return v;
    return undefined;
}

/** Builds {traces, observations} from the accepted records, as Langfuse would show them. */
export function buildView(records) {
    const traces = new Map();
    const traceNameFromAttr = new Set();
    const observations = [];
    const ensure = (id) => {
        if (!traces.has(id)) traces.set(id, emptyTrace(id));
        return traces.get(id);
    };
    const legacyObservations = [];

    for (const r of records) {
        if (r.transport === 'otlp') {
            const { span, attrs, json, resourceAttrs } = r;
            const envOf = (a) => firstDefined(...ENV_KEYS.map((k) => a[k]));
            const spanEnv = envOf(attrs);
            const resourceEnv = envOf(resourceAttrs);
            const environment = spanEnv ?? resourceEnv ?? 'default';
            const userId = firstDefined(attrs['langfuse.user.id'], attrs['user.id']) ?? null;
            const sessionId = firstDefined(attrs['langfuse.session.id'], attrs['session.id']) ?? null;
            const status = span.status ?? {};
            const metadata = { ...(json['langfuse.observation.metadata'] ?? {}) };
            const prefix = 'langfuse.observation.metadata.';
            for (const [k, v] of Object.entries(attrs)) if (k.startsWith(prefix)) metadata[k.slice(prefix.length)] = v;
            const cst = attrs['langfuse.observation.completion_start_time'];
            observations.push({
                id: span.spanId,
                traceId: span.traceId,
                type: String(attrs['langfuse.observation.type'] ?? 'span').toUpperCase(),
                name: span.name,
                parentObservationId: span.parentSpanId ? span.parentSpanId : null,
                startTime: nsToIso(span.startTimeUnixNano),
                endTime: nsToIso(span.endTimeUnixNano),
                completionStartTime: cst !== undefined ? new Date(cst).toISOString() : null,
                model: firstDefined(attrs['langfuse.observation.model.name'], attrs['gen_ai.response.model'],
                    attrs['gen_ai.request.model']) ?? null,
                modelParameters: json['langfuse.observation.model.parameters'] ?? {},
                usageDetails: json['langfuse.observation.usage_details'] ?? {},
                costDetails: json['langfuse.observation.cost_details'] ?? {},
                level: attrs['langfuse.observation.level'] ?? (status.code === 2 ? 'ERROR' : 'DEFAULT'),
                statusMessage: firstDefined(attrs['langfuse.observation.status_message'], status.message) ?? null,
                input: json['langfuse.observation.input'] ?? null,
                output: json['langfuse.observation.output'] ?? null,
                metadata,
                environment,
                userId,
                sessionId,
            });

            const t = ensure(span.traceId);
            t.observationIds.push(span.spanId);
            const isRoot = !span.parentSpanId || attrs['langfuse.internal.as_root'] === true;
            if (attrs['langfuse.trace.name'] !== undefined) {
                t.name = attrs['langfuse.trace.name'];
                traceNameFromAttr.add(t.id);
            } else if (isRoot && !traceNameFromAttr.has(t.id)) {
                t.name = span.name;
            }
            if (userId !== null) t.userId = userId;
            if (sessionId !== null) t.sessionId = sessionId;
            if (spanEnv !== undefined || resourceEnv !== undefined) {
                t.environment = environment;
            }
            const tags = attrs['langfuse.trace.tags'];
            if (Array.isArray(tags)) t.tags = [...new Set([...t.tags, ...tags])].sort();
            const release = firstDefined(attrs['langfuse.release'], resourceAttrs['langfuse.release']);
            if (release !== undefined) t.release = release;
            const version = firstDefined(attrs['langfuse.version'], resourceAttrs['langfuse.version'], resourceAttrs['service.version']);
            if (version !== undefined) t.version = version;
            Object.assign(t.metadata, json['langfuse.trace.metadata'] ?? {});
            const tprefix = 'langfuse.trace.metadata.';
            for (const [k, v] of Object.entries(attrs)) if (k.startsWith(tprefix)) t.metadata[k.slice(tprefix.length)] = v;
        } else {
            const { event } = r;
            const b = event.body;
            if (event.type === 'trace-create') {
                const t = ensure(b.id);
                for (const k of ['name', 'userId', 'sessionId', 'release', 'version', 'environment']) {
                    if (b[k] !== undefined && b[k] !== null) t[k] = b[k];
                }
                if (Array.isArray(b.tags)) t.tags = [...new Set([...t.tags, ...b.tags])].sort();
                if (isPlainObject(b.metadata)) Object.assign(t.metadata, b.metadata);
            } else {
                const o = {
                    id: b.id,
                    traceId: b.traceId,
                    type: OBSERVATION_EVENT_TYPE[event.type],
                    name: b.name ?? null,
                    parentObservationId: b.parentObservationId ?? null,
                    startTime: b.startTime ? new Date(b.startTime).toISOString() : new Date(event.timestamp).toISOString(),
                    endTime: b.endTime ? new Date(b.endTime).toISOString() : null,
                    completionStartTime: b.completionStartTime ? new Date(b.completionStartTime).toISOString() : null,
                    model: b.model ?? null,
                    modelParameters: b.modelParameters ?? {},
                    usageDetails: b.usageDetails ?? {},
                    costDetails: b.costDetails ?? {},
                    level: b.level ?? 'DEFAULT',
                    statusMessage: b.statusMessage ?? null,
                    input: b.input ?? null,
                    output: b.output ?? null,
                    metadata: isPlainObject(b.metadata) ? { ...b.metadata } : {},
                    environment: b.environment ?? 'default',
                    userId: null,
                    sessionId: null,
                };
                observations.push(o);
                legacyObservations.push(o);
            }
        }
    }
    // Legacy observations join their trace once every trace-create is known (order is free).
    for (const o of legacyObservations) {
        const t = traces.get(o.traceId);
        if (!t) continue; // no trace-create: Langfuse shows no trace row for it
        t.observationIds.push(o.id);
        o.userId = t.userId;
        o.sessionId = t.sessionId;
    }
    return { traces: [...traces.values()], observations };
}

// ---------------------------------------------------------------------------------------------
// Beacon's side of the contract (design.md "Broadcast to Langfuse: the mapping"), shared by the
// golden runner and the broadcast integration tests so both derive ids the same way.

export function sha256Hex(text) {
    return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** trace.trace_id as is when it is 32 lowercase hex, else the first 32 hex of its sha256. */
export function langfuseTraceId(value) {
    return HEX32.test(value) ? value : sha256Hex(value).slice(0, 32);
}

/** trace.parent_span_id as is when it is 16 lowercase hex, else the first 16 hex of its sha256. */
export function langfuseParentId(value) {
    return HEX16.test(value) ? value : sha256Hex(value).slice(0, 16);
}

/** The generation observation id of a request: first 16 hex of sha256(generation id). */
export function generationObservationId(generationId) {
    return sha256Hex(generationId).slice(0, 16);
}

/** The span observation id of a request: first 16 hex of sha256(generation id + ":span"). */
export function spanObservationId(generationId) {
    return sha256Hex(`${generationId}:span`).slice(0, 16);
}

function tomlString(s) {
    return JSON.stringify(String(s));
}

function tomlInt(v, key) {
    if (!Number.isSafeInteger(v)) throw new TypeError(`broadcastToml: ${key} must be an integer, got ${shortJson(v)}`);
    return String(v);
}

/**
 * The [broadcast] section Beacon reads, to append to the gateway config. Options left out are
 * not written (Beacon's defaults apply):
 *   flushIntervalMs   broadcast.flush_interval_ms (default 50 here)
 *   enabled           broadcast.enabled (default true; null writes no line)
 *   maxBatchRecords, retryBaseMs, retryMaxMs   broadcast.max_batch_records, retry_base_ms, retry_max_ms
 *   spool             {flushIntervalMs, maxBytes, sync}: the [broadcast.spool] table
 *   destinations      [{url, name, publicKey, secretKey | secretKeyEnv, privacyMode, transport,
 *                     timeoutMs}] (default none); a destination's id is "cfg-<name>"
 */
export function broadcastToml({
    flushIntervalMs = 50, enabled = true, maxBatchRecords, retryBaseMs, retryMaxMs, spool, destinations = [],
} = {}) {
    let out = '\n[broadcast]\n';
    if (enabled !== null) out += `enabled = ${enabled ? 'true' : 'false'}\n`;
    out += `flush_interval_ms = ${tomlInt(flushIntervalMs, 'flushIntervalMs')}\n`;
    for (const [key, v] of [['max_batch_records', maxBatchRecords], ['retry_base_ms', retryBaseMs], ['retry_max_ms', retryMaxMs]]) {
        if (v !== undefined) out += `${key} = ${tomlInt(v, key)}\n`;
    }
    if (spool) {
        // A sub-table: every plain [broadcast] key must come before it.
        out += '\n[broadcast.spool]\n';
        if (spool.flushIntervalMs !== undefined) out += `flush_interval_ms = ${tomlInt(spool.flushIntervalMs, 'spool.flushIntervalMs')}\n`;
        if (spool.maxBytes !== undefined) out += `max_bytes = ${tomlInt(spool.maxBytes, 'spool.maxBytes')}\n`;
        if (spool.sync !== undefined) out += `sync = ${tomlString(spool.sync)}\n`;
    }
    destinations.forEach((d, i) => {
        out += '\n[[broadcast.destinations]]\ntype = "langfuse"\n';
        out += `name = ${tomlString(d.name ?? `langfuse-${i + 1}`)}\n`;
        out += `public_key = ${tomlString(d.publicKey ?? 'pk-lf-test')}\n`;
        if (d.secretKeyEnv) out += `secret_key_env = ${tomlString(d.secretKeyEnv)}\n`;
        else out += `secret_key = ${tomlString(d.secretKey ?? 'sk-lf-test')}\n`;
        out += `base_url = ${tomlString(d.url)}\n`;
        out += `privacy_mode = ${d.privacyMode ? 'true' : 'false'}\n`;
        out += `transport = ${tomlString(d.transport ?? 'otlp')}\n`;
        if (d.timeoutMs !== undefined) out += `timeout_ms = ${tomlInt(d.timeoutMs, 'timeoutMs')}\n`;
    });
    return out;
}

// ---------------------------------------------------------------------------------------------
// The server

function normalizeKeyPairs(v) {
    const list = Array.isArray(v) ? v : v ? [v] : [];
    return list.map((k, i) => {
        if (!isPlainObject(k) || typeof k.publicKey !== 'string' || typeof k.secretKey !== 'string') {
            throw new TypeError(`organizationKeys[${i}] must be {publicKey, secretKey} strings`);
        }
        return { publicKey: k.publicKey, secretKey: k.secretKey };
    });
}

function checkProbeMode(mode) {
    if (!PROBE_MODES.includes(mode)) throw new TypeError(`probeMode must be one of ${PROBE_MODES.join('/')}, got ${shortJson(mode)}`);
    return mode;
}

function checkBoolean(v, name) {
    if (typeof v !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${shortJson(v)}`);
    return v;
}

function parseBasicAuth(header) {
    if (typeof header !== 'string') return { missing: true };
    const m = /^Basic\s+(.+)$/i.exec(header.trim());
    if (!m) return { bad: true };
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { bad: true };
    return { publicKey: decoded.slice(0, colon), secretKey: decoded.slice(colon + 1) };
}

/**
 * Starts the fake on 127.0.0.1 (port 0 = OS-chosen). Options:
 *   publicKey, secretKey   the project keys Basic auth must carry
 *   version                reported by GET /api/public/health (null: no version in the answer)
 *   projects               [{id, name}] listed by GET /api/public/projects
 *   requireIngestionVersion  true (default): OTLP exports must carry x-langfuse-ingestion-version: 4
 *   organizationKeys       {publicKey, secretKey} or a list of them: organisation keys (403/401)
 *   notLangfuse            true: every path answers 404 text/html, as a host that is not Langfuse
 *   probeMode              'answer' | 'hang' | 'close' for projects, health and ready
 */
export async function startFakeLangfuse({
    publicKey = 'pk-lf-test',
    secretKey = 'sk-lf-test',
    version = '3.120.0',
    projects = [{ id: 'proj_1', name: 'Test Project' }],
    requireIngestionVersion = true,
    organizationKeys = [],
    notLangfuse = false,
    probeMode = 'answer',
    port = 0,
} = {}) {
    const initialKeys = { publicKey, secretKey };
    let keys = { ...initialKeys };
    const initialSide = {
        version,
        projects: structuredClone(projects),
        organizationKeys: normalizeKeyPairs(organizationKeys),
        notLangfuse: checkBoolean(notLangfuse, 'notLangfuse'),
        probeMode: checkProbeMode(probeMode),
    };
    let side = structuredClone(initialSide);
    const requests = [];
    let requestSeq = 0;
    const spans = [];
    const rawBodies = [];
    const exports = [];
    const ingestionItems = [];
    const itemAttempts = new Map();
    let actions = [];
    let delayMs = 0;
    let itemPredicate = null;
    // A standing failure ({status, body, headers, delayMs}) answered to every export, or null.
    let failure = null;
    // rejectObservations' predicate, or null.
    let rejectPredicate = null;
    // pause(): the listening socket is closed and every connection destroyed.
    let paused = false;
    let epoch = 0;
    let seq = 0;
    const waiters = new Set();
    // Every open socket, so that pause() can destroy them all (idle keep-alive ones included).
    const sockets = new Set();

    const observationCount = () => spans.filter((s) => s.kind !== 'trace-create').length;

    // Load tests record thousands of observations; an error message lists the last ones only.
    const DESCRIBE_MAX_LINES = 200;
    function lastLines(lines) {
        if (lines.length <= DESCRIBE_MAX_LINES) return lines.join('\n') || '  (none)';
        return [`  ... ${lines.length - DESCRIBE_MAX_LINES} earlier line(s) left out`,
            ...lines.slice(-DESCRIBE_MAX_LINES)].join('\n');
    }

    function describeState() {
        const obs = spans.filter((s) => s.kind !== 'trace-create')
            .map((s) => `  ${s.transport} ${s.kind} id=${s.id} trace=${s.traceId} name=${shortJson(s.name, 60)}`);
        const ex = exports.map((e) => `  #${e.seq} ${e.path} -> ${e.dropped ? 'dropped' : e.clientClosed ? 'client closed' : e.status}` +
            `${e.injected ? ' (injected)' : ''}${e.error ? ` ${e.error.slice(0, 400)}` : ''}`);
        const modes = [paused ? 'paused (connections refused)' : null,
            failure ? `standing failure ${failure.status}` : null,
            rejectPredicate ? 'rejectObservations set' : null].filter(Boolean);
        return `observations received (${obs.length}):\n${lastLines(obs)}\n` +
            `export requests (${ex.length}):\n${lastLines(ex)}` +
            (modes.length > 0 ? `\nfault modes now: ${modes.join(', ')}` : '');
    }

    function notify() {
        for (const w of waiters) {
            let done;
            try {
                done = w.predicate();
            } catch (err) {
                w.settle(() => w.reject(err));
                continue;
            }
            if (done) w.settle(() => w.resolve(w.value()));
        }
    }

    function waitFor(predicate, { timeoutMs = DEFAULT_WAIT_TIMEOUT_MS, what = 'condition', value = () => undefined } = {}) {
        return new Promise((resolve, reject) => {
            const w = { predicate, value, resolve, reject };
            const timer = setTimeout(() => {
                w.settle(() => reject(new Error(
                    `fake Langfuse: timed out after ${timeoutMs} ms waiting for ${what}\n${describeState()}`)));
            }, timeoutMs);
            w.settle = (fn) => {
                if (!waiters.delete(w)) return;
                clearTimeout(timer);
                fn();
            };
            waiters.add(w);
            notify();
        });
    }

    function sendJson(res, status, obj, headers = {}) {
        sendBody(res, status, JSON.stringify(obj), { 'content-type': 'application/json; charset=utf-8', ...headers });
    }

    function sendBody(res, status, text, headers = {}) {
        const body = Buffer.from(text, 'utf8');
        res.writeHead(status, { ...headers, 'content-length': String(body.length) });
        res.end(body);
    }

    function notFound(res) {
        sendBody(res, 404, NOT_FOUND_HTML, { 'content-type': 'text/html; charset=utf-8' });
    }

    /** Waits ms unless the client goes away first; resolves false when it did. */
    function waitUnlessClosed(res, ms) {
        if (ms <= 0) return Promise.resolve(!res.destroyed);
        return new Promise((resolve) => {
            const onClose = () => {
                clearTimeout(timer);
                resolve(false);
            };
            const timer = setTimeout(() => {
                res.off('close', onClose);
                resolve(!res.destroyed);
            }, ms);
            res.once('close', onClose);
        });
    }

    function checkAuth(req) {
        const a = parseBasicAuth(req.headers.authorization);
        if (a.missing) return { ok: false, message: 'No authorization header' };
        if (!a.bad && a.publicKey === keys.publicKey && a.secretKey === keys.secretKey) return { ok: true };
        if (!a.bad && side.organizationKeys.some((k) => k.publicKey === a.publicKey && k.secretKey === a.secretKey)) {
            return { ok: false, organization: true, message: ORGANIZATION_KEY_401 };
        }
        return { ok: false, message: INVALID_CREDENTIALS };
    }

    /** Logs a request in `requests`; its status and outcome are filled in when it ends. */
    function logRequest(req, res, path) {
        const a = parseBasicAuth(req.headers.authorization);
        const entry = {
            seq: ++requestSeq,
            method: req.method,
            path,
            at: nowMs(),
            publicKey: a.publicKey ?? null,
            status: null,
            // 'pending', then 'answered', 'hang' (while hanging), 'closed' (the fake destroyed
            // the socket) or 'client closed' (the client went away before the answer).
            outcome: 'pending',
            endedAt: null,
        };
        requests.push(entry);
        res.once('finish', () => {
            entry.status = res.statusCode;
            entry.outcome = 'answered';
            entry.endedAt = nowMs();
            notify();
        });
        res.once('close', () => {
            if (entry.outcome === 'answered') return;
            if (entry.outcome !== 'closed') entry.outcome = 'client closed';
            entry.endedAt = nowMs();
            notify();
        });
        notify();
        return entry;
    }

    function readBody(req) {
        return new Promise((resolve, reject) => {
            const chunks = [];
            let total = 0;
            req.on('data', (c) => {
                total += c.length;
                if (total > READ_LIMIT_BYTES) {
                    req.destroy();
                    reject(new Error('body over the fake\'s read limit'));
                    return;
                }
                chunks.push(c);
            });
            req.on('end', () => resolve(Buffer.concat(chunks)));
            req.on('error', reject);
            // A connection destroyed mid-body (pause(), a client that gives up) may end the
            // request without 'end' or 'error'; after 'end' this reject is a no-op.
            req.once('close', () => reject(new Error('connection closed before the body was read')));
        });
    }

    /** Decides the answer to an OTLP export: {status, body, records}. */
    function handleOtlp(req, decoded, gunzipError) {
        const auth = checkAuth(req);
        if (!auth.ok) return { status: 401, body: { message: auth.message } };
        const ct = String(req.headers['content-type'] ?? '').toLowerCase();
        if (!ct.includes('application/json')) return { status: 400, body: { error: 'Invalid content type' } };
        if (gunzipError) return { status: 400, body: { error: `Failed to decompress gzip body: ${gunzipError}` } };
        const enc = String(req.headers['content-encoding'] ?? '').trim().toLowerCase();
        if (enc && enc !== 'gzip' && enc !== 'identity') {
            return { status: 400, body: { error: `Unsupported content encoding ${shortJson(enc)}` } };
        }
        const iv = req.headers['x-langfuse-ingestion-version'];
        if (iv !== undefined) {
            if (!/^\d+$/.test(String(iv).trim()) || Number(iv) > 4) {
                return { status: 400, body: { error: `Unsupported x-langfuse-ingestion-version ${shortJson(iv)}` } };
            }
        }
        if (requireIngestionVersion && String(iv ?? '').trim() !== '4') {
            return {
                status: 400,
                body: { error: `x-langfuse-ingestion-version: 4 is required (fake strictness; got ${shortJson(iv ?? null)})` },
            };
        }
        let body;
        try {
            body = JSON.parse(decoded.toString('utf8'));
        } catch (err) {
            return { status: 400, body: { error: `Invalid JSON body: ${err.message}` } };
        }
        let decodedSpans;
        try {
            decodedSpans = validateOtlp(body);
        } catch (err) {
            if (err instanceof Invalid) return { status: 400, body: { error: err.message } };
            throw err;
        }
        const records = decodedSpans.map((d) => ({
            transport: 'otlp',
            kind: 'span',
            id: d.span.spanId,
            traceId: d.span.traceId,
            parentId: d.span.parentSpanId || null,
            name: d.span.name,
            type: d.attrs['langfuse.observation.type'] ?? 'span',
            raw: d.span,
            span: d.span,
            attrs: d.attrs,
            json: d.json,
            resourceAttrs: d.resourceAttrs,
            scope: d.scope,
        }));
        if (rejectPredicate) {
            // The whole request fails, as real Langfuse answers a batch with one bad record.
            const refused = records.filter((r) => rejectPredicate(r));
            if (refused.length > 0) {
                const ids = refused.map((r) => r.id);
                return {
                    status: 400,
                    body: { error: `Invalid request data: observation(s) ${ids.join(', ')} refused (rejectObservations)` },
                    rejectedIds: ids,
                };
            }
        }
        return { status: 200, body: {}, records };
    }

    /** Decides the answer to a legacy batch: {status, body, records}. */
    function handleIngestion(req, raw) {
        if (raw.length > INGESTION_MAX_BYTES) {
            return { status: 413, text: 'Body exceeded 4.5mb limit', contentType: 'text/plain; charset=utf-8' };
        }
        const enc = String(req.headers['content-encoding'] ?? '').trim().toLowerCase();
        if (enc && enc !== 'identity') {
            return {
                status: 400,
                body: { message: 'Invalid request data', errors: [{ message: `Content-Encoding ${enc} is not supported on /api/public/ingestion (the server does not inflate it)` }] },
            };
        }
        const auth = checkAuth(req);
        if (!auth.ok) return { status: 401, body: { error: 'UnauthorizedError', message: auth.message } };
        const ct = String(req.headers['content-type'] ?? '').toLowerCase();
        if (!ct.includes('application/json')) {
            return { status: 400, body: { message: 'Invalid request data', errors: [{ message: 'Content-Type must be application/json' }] } };
        }
        let body;
        try {
            body = JSON.parse(raw.toString('utf8'));
        } catch (err) {
            return { status: 400, body: { message: 'Invalid request data', errors: [{ message: `Invalid JSON: ${err.message}` }] } };
        }
        if (!isPlainObject(body) || !Array.isArray(body.batch)) {
            return {
                status: 400,
                body: { message: 'Invalid request data', errors: [{ code: 'invalid_type', path: ['batch'], message: 'batch must be an array' }] },
            };
        }
        const successes = [];
        const errors = [];
        const records = [];
        const items = [];
        for (const ev of body.batch) {
            const eventId = isPlainObject(ev) && typeof ev.id === 'string' ? ev.id : 'unknown';
            const attempt = (itemAttempts.get(eventId) ?? 0) + 1;
            itemAttempts.set(eventId, attempt);
            const item = { eventId, type: ev?.type, bodyId: ev?.body?.id, attempt, status: 201 };
            items.push(item);
            try {
                validateIngestionEvent(ev);
            } catch (err) {
                if (!(err instanceof ItemInvalid)) throw err;
                item.status = 400;
                item.error = err.message;
                errors.push({ id: eventId, status: 400, message: 'Invalid request data', error: zodError(err.path, err.message) });
                continue;
            }
            const verdict = itemPredicate ? itemPredicate(ev, { attempt }) : undefined;
            const vStatus = typeof verdict === 'number' ? verdict : verdict?.status;
            if (vStatus && vStatus !== 201) {
                const message = verdict?.message ?? (vStatus >= 500 ? 'Internal Server Error' : 'Invalid request data');
                item.status = vStatus;
                item.error = `${message} (injected)`;
                errors.push({ id: eventId, status: vStatus, message, error: `${message} (injected by the fake)` });
                continue;
            }
            successes.push({ id: eventId, status: 201 });
            const b = ev.body;
            records.push({
                transport: 'ingestion',
                kind: ev.type,
                id: b.id,
                eventId: ev.id,
                traceId: ev.type === 'trace-create' ? b.id : b.traceId,
                parentId: b.parentObservationId ?? null,
                name: b.name ?? null,
                type: ev.type === 'trace-create' ? 'trace' : OBSERVATION_EVENT_TYPE[ev.type].toLowerCase(),
                raw: ev,
                event: ev,
            });
        }
        return { status: 207, body: { successes, errors }, records, items };
    }

    async function handleExport(req, res, path, logEntry) {
        const myEpoch = epoch;
        const at = nowMs();
        const raw = await readBody(req);
        const gzip = String(req.headers['content-encoding'] ?? '').toLowerCase().includes('gzip');
        let decoded = raw;
        let gunzipError = null;
        if (gzip && path === OTLP_PATH) {
            try {
                decoded = zlib.gunzipSync(raw);
            } catch (err) {
                gunzipError = err.message;
            }
        }
        const entry = {
            seq: ++seq,
            path,
            at,
            answeredAt: null,
            status: null,
            headers: { ...req.headers },
            gzip,
            bodyBytes: raw.length,
            decodedBytes: decoded.length,
            error: null,
            injected: false,
            dropped: false,
            clientClosed: false,
            accepted: 0,
            rejectedIds: null,
        };
        exports.push(entry);
        rawBodies.push(decoded.toString('utf8'));
        notify();

        // A standing failure wins over the queue, which waits (unconsumed) until it is lifted.
        const action = failure ?? actions.shift();
        if (action?.drop) {
            if (logEntry) logEntry.outcome = 'closed';
            entry.dropped = true;
            entry.answeredAt = nowMs();
            notify();
            req.socket.destroy();
            return;
        }
        let outcome;
        if (action) {
            entry.injected = true;
            const b = action.body ?? { message: `fake Langfuse: injected ${action.status}` };
            outcome = typeof b === 'string'
                ? { status: action.status, text: b, contentType: 'text/plain; charset=utf-8', headers: action.headers }
                : { status: action.status, body: b, headers: action.headers };
        } else if (path === OTLP_PATH) {
            outcome = handleOtlp(req, decoded, gunzipError);
        } else {
            outcome = handleIngestion(req, raw);
        }
        if (outcome.rejectedIds) {
            entry.injected = true;
            entry.rejectedIds = outcome.rejectedIds;
        }
        const wait = (action?.delayMs ?? 0) + delayMs;
        const alive = await waitUnlessClosed(res, wait);
        // pause() already marked it dropped: the fake, not the client, ended it.
        if (entry.dropped) return;
        if (!alive) {
            entry.clientClosed = true;
            entry.answeredAt = nowMs();
            notify();
            return;
        }
        if (myEpoch === epoch) {
            for (const r of outcome.records ?? []) {
                r.exportSeq = entry.seq;
                r.receivedAt = at;
                spans.push(r);
            }
            entry.accepted = outcome.records?.length ?? 0;
            if (outcome.items) ingestionItems.push(...outcome.items);
        }
        entry.status = outcome.status;
        entry.answeredAt = nowMs();
        const text = outcome.text ?? JSON.stringify(outcome.body);
        if (outcome.status >= 300 || (outcome.status === 207 && outcome.body?.errors?.length > 0)) entry.error = text;
        sendBody(res, outcome.status, text, {
            'content-type': outcome.contentType ?? 'application/json; charset=utf-8',
            ...(outcome.headers ?? {}),
        });
        notify();
    }

    async function route(req, res) {
        const url = new URL(req.url, 'http://fake');
        const path = url.pathname.replace(/\/+$/, '') || '/';
        if (path === '/_test/view' && req.method === 'GET') {
            sendJson(res, 200, buildView(spans));
            return;
        }
        const entry = logRequest(req, res, path);
        const isProbe = path === HEALTH_PATH || path === '/api/public/ready' || path === PROJECTS_PATH;
        if (isProbe && side.probeMode === 'hang') {
            // Never answered: the client's own timeout (or close()) ends it.
            entry.outcome = 'hang';
            req.resume();
            notify();
            return;
        }
        if (isProbe && side.probeMode === 'close') {
            entry.outcome = 'closed';
            entry.endedAt = nowMs();
            req.socket.destroy();
            notify();
            return;
        }
        if (side.notLangfuse) {
            req.resume();
            if (!(await waitUnlessClosed(res, delayMs))) return;
            notFound(res);
            return;
        }
        if (path === OTLP_PATH || path === INGESTION_PATH) {
            if (req.method !== 'POST') {
                req.resume();
                sendJson(res, 405, { message: 'Method not allowed' });
                return;
            }
            await handleExport(req, res, path, entry);
            return;
        }
        req.resume();
        if (!(await waitUnlessClosed(res, delayMs))) return;
        if (path === HEALTH_PATH || path === '/api/public/ready') {
            if (req.method !== 'GET') return sendJson(res, 405, { message: 'Method not allowed' });
            return sendJson(res, 200, side.version === null ? { status: 'OK' } : { status: 'OK', version: side.version });
        }
        if (path === PROJECTS_PATH) {
            if (req.method !== 'GET') return sendJson(res, 405, { message: 'Method not allowed' });
            const auth = checkAuth(req);
            if (auth.organization) return sendJson(res, 403, { message: ORGANIZATION_KEY_403 });
            if (!auth.ok) return sendJson(res, 401, { message: auth.message });
            return sendJson(res, 200, {
                data: side.projects.map((p) => ({ id: p.id, name: p.name, organization: { id: 'org_1', name: 'Org' }, metadata: {} })),
            });
        }
        notFound(res);
    }

    const server = http.createServer((req, res) => {
        route(req, res).catch((err) => {
            if (res.destroyed) return;
            console.error('fake Langfuse: handler failed:', err);
            if (!res.headersSent) sendJson(res, 500, { message: 'fake Langfuse internal error', error: String(err) });
            else res.destroy();
        });
    });
    server.requestTimeout = 0;
    server.on('connection', (socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
    });
    const actualPort = await listenLoopback(server, port);

    function checkFailure(f) {
        if (!isPlainObject(f)) throw new TypeError(`setFailure takes {status, body, headers, delayMs} or null, got ${shortJson(f)}`);
        const { status, body, headers = {}, delayMs: d = 0 } = f;
        if (!Number.isInteger(status) || status < 100 || status > 599) throw new TypeError(`setFailure: status must be an HTTP status, got ${shortJson(status)}`);
        if (!isPlainObject(headers)) throw new TypeError(`setFailure: headers must be an object, got ${shortJson(headers)}`);
        if (body !== undefined && typeof body !== 'string' && !isPlainObject(body) && !Array.isArray(body)) {
            throw new TypeError(`setFailure: body must be a string or JSON object/array, got ${shortJson(body)}`);
        }
        if (!Number.isFinite(d) || d < 0) throw new TypeError(`setFailure: delayMs must be >= 0, got ${shortJson(d)}`);
        return { status, body, headers: { ...headers }, delayMs: d };
    }

    return {
        url: `http://127.0.0.1:${actualPort}`,
        port: actualPort,
        get publicKey() {
            return keys.publicKey;
        },
        get secretKey() {
            return keys.secretKey;
        },
        /** Accepted spans and legacy events, in arrival order, duplicates kept (live array). */
        spans,
        /** Decoded body of every export request received (live array). */
        rawBodies,
        /** One entry per export request (live array). */
        exports,
        /** One entry per legacy batch item offered, with the status it got (live array). */
        ingestionItems,
        /**
         * Every request but /_test/... (exports included), in arrival order (live array):
         * {seq, method, path, at, publicKey, status, outcome, endedAt}; outcome is 'pending',
         * 'answered', 'hang', 'closed' (by the fake) or 'client closed'.
         */
        requests,
        /** The version health reports now. */
        get version() {
            return side.version;
        },
        /** What Langfuse would show: {traces, observations}. */
        view() {
            return buildView(spans);
        },
        /** The next n export requests answer {status, body, headers} after delayMs instead. */
        failNext(n, { status = 503, body, headers = {}, delayMs: d = 0 } = {}) {
            for (let i = 0; i < n; i++) actions.push({ status, body, headers, delayMs: d });
        },
        /** The next n export requests get their socket destroyed without an answer. */
        dropConnections(n) {
            for (let i = 0; i < n; i++) actions.push({ drop: true });
        },
        /**
         * {status, body, headers, delayMs}: from now on EVERY export request gets this answer
         * (before any check; recorded with injected: true, nothing accepted) until
         * setFailure(null). The failNext/dropConnections queue waits meanwhile.
         */
        setFailure(f) {
            failure = f === null || f === undefined ? null : checkFailure(f);
        },
        /** The standing failure set by setFailure, or null. */
        get failure() {
            return failure ? structuredClone(failure) : null;
        },
        /**
         * OTLP: predicate(record) is called for every span of an otherwise valid export
         * (record: {id: hex spanId, traceId, parentId, name, type, attrs, span, ...}); if it is
         * truthy for any, the whole export is answered 400 and nothing of it is recorded.
         * null removes it.
         */
        rejectObservations(predicate) {
            if (predicate !== null && predicate !== undefined && typeof predicate !== 'function') {
                throw new TypeError('rejectObservations takes a function or null');
            }
            rejectPredicate = predicate ?? null;
        },
        /**
         * Closes the listening socket and destroys every open connection: the port refuses
         * connections until resume(). Exports in progress are marked dropped.
         */
        async pause() {
            if (paused) return;
            paused = true;
            const t = nowMs();
            for (const e of exports) {
                if (e.answeredAt !== null) continue;
                e.dropped = true;
                e.answeredAt = t;
            }
            for (const r of requests) {
                if (r.outcome !== 'pending' && r.outcome !== 'hang') continue;
                r.outcome = 'closed';
                r.endedAt = t;
            }
            const closed = new Promise((resolve) => server.close(() => resolve()));
            for (const socket of sockets) socket.destroy();
            server.closeAllConnections();
            await closed;
            notify();
        },
        /** Listens again on the same 127.0.0.1 port. */
        async resume() {
            if (!paused) return;
            try {
                await listenLoopback(server, actualPort);
            } catch (err) {
                throw new Error(`fake Langfuse: cannot listen on 127.0.0.1:${actualPort} again: ${err.message}`);
            }
            paused = false;
            notify();
        },
        /** True between pause() and resume(). */
        get paused() {
            return paused;
        },
        /** Delays every answer by ms (0 to stop). */
        setDelay(ms) {
            delayMs = Math.max(0, ms);
        },
        setKeys(pk, sk) {
            keys = { publicKey: pk, secretKey: sk };
        },
        /** What GET /api/public/health reports from now on (null: no version field). */
        setVersion(v) {
            side.version = v;
        },
        /** The projects GET /api/public/projects lists from now on. */
        setProjects(list) {
            side.projects = structuredClone(list);
        },
        /** {publicKey, secretKey} or a list of them: organisation keys from now on. */
        setOrganizationKeys(v) {
            side.organizationKeys = normalizeKeyPairs(v);
        },
        /** true: every path answers 404 text/html from now on. */
        setNotLangfuse(on) {
            side.notLangfuse = checkBoolean(on, 'notLangfuse');
        },
        /** 'answer', 'hang' or 'close' for the projects, health and ready probes from now on. */
        setProbeMode(mode) {
            side.probeMode = checkProbeMode(mode);
        },
        /**
         * Resolves with the matching requests once at least n arrived (they need not have ended).
         * `path` (optional) only counts requests to that path.
         */
        waitForRequests(n, { path, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS } = {}) {
            const matching = () => requests.filter((r) => path === undefined || r.path === path);
            return waitFor(() => matching().length >= n, {
                timeoutMs, what: `${n} request(s)${path ? ` to ${path}` : ''}`, value: matching,
            });
        },
        /**
         * Legacy API: predicate(event, {attempt}) returns a falsy value (accept), a status
         * (400, 500, ...) or {status, message} for the item. `attempt` counts the times this
         * event id was offered, starting at 1. null removes it.
         */
        reject207Items(predicate) {
            itemPredicate = predicate ?? null;
        },
        /** Resolves with the view once at least n observations were accepted. */
        waitForObservations(n, { timeoutMs = DEFAULT_WAIT_TIMEOUT_MS } = {}) {
            return waitFor(() => observationCount() >= n, {
                timeoutMs, what: `${n} observation(s)`, value: () => buildView(spans),
            });
        },
        /** Resolves with the exports once at least n export requests were answered (or dropped). */
        waitForExports(n, { timeoutMs = DEFAULT_WAIT_TIMEOUT_MS } = {}) {
            return waitFor(() => exports.filter((e) => e.answeredAt !== null).length >= n, {
                timeoutMs, what: `${n} answered export request(s)`, value: () => exports.slice(),
            });
        },
        /** Resolves once predicate() is true (checked on every recorded change). */
        waitFor(predicate, opts = {}) {
            return waitFor(predicate, opts);
        },
        /** A human-readable list of what arrived, for assertion messages. */
        describe: describeState,
        /**
         * Clears records, injections (the standing failure and rejectObservations included),
         * delay, the item predicate and the request log, and restores the keys, version,
         * projects, organisation keys and modes given at start. It does not resume a paused
         * fake (resume() is asynchronous).
         */
        reset() {
            epoch += 1;
            spans.length = 0;
            rawBodies.length = 0;
            exports.length = 0;
            ingestionItems.length = 0;
            requests.length = 0;
            side = structuredClone(initialSide);
            itemAttempts.clear();
            actions = [];
            delayMs = 0;
            itemPredicate = null;
            failure = null;
            rejectPredicate = null;
            keys = { ...initialKeys };
        },
        async close() {
            for (const w of waiters) w.settle(() => w.reject(new Error('fake Langfuse closed')));
            for (const socket of sockets) socket.destroy();
            server.closeAllConnections();
            // A paused server is not listening: there is nothing left to close.
            if (!paused) await new Promise((resolve) => server.close(() => resolve()));
        },
    };
}

// Standalone mode.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
    const arg = (name) => {
        const i = process.argv.indexOf(name);
        return i > 0 ? process.argv[i + 1] : undefined;
    };
    const p = Number(arg('--port') ?? 0);
    const opts = { port: p, notLangfuse: process.argv.includes('--not-langfuse') };
    if (arg('--server-version') !== undefined) opts.version = arg('--server-version');
    if (arg('--probe-mode') !== undefined) opts.probeMode = arg('--probe-mode');
    const fake = await startFakeLangfuse(opts);
    console.log(`listening on ${fake.url}`);
    const stop = async () => {
        await fake.close();
        process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
}
