// Beacon settings page: Settings > Observability.
//
// A thin client of the management API (docs/management_api.md); the server is the judge of
// every change, so this file never assumes success: it shows what the server answered.
// Server-provided text only ever goes through textContent, never innerHTML.
'use strict';

(() => {
    // sessionStorage, not localStorage: the key is a credential, so it should die with the tab.
    const KEY_STORAGE = 'beacon.managementKey';
    const REFRESH_MS = 5000;
    // Test Connection alone may take 5 s plus a probe of the other Langfuse regions.
    const REQUEST_TIMEOUT_MS = 30000;
    const DEFAULT_BASE_URL = 'https://us.cloud.langfuse.com';
    const API = '/api/v1/observability';

    const $ = (id) => document.getElementById(id);
    const ui = {
        signOut: $('sign-out'),
        signinView: $('signin-view'),
        signinForm: $('signin-form'),
        signinKey: $('signin-key'),
        signinStatus: $('signin-status'),
        settingsView: $('settings-view'),
        settingsTitle: $('settings-title'),
        broadcast: $('broadcast-switch'),
        broadcastStatus: $('broadcast-status'),
        list: $('destinations'),
        listTitle: $('destinations-title'),
        listEmpty: $('destinations-empty'),
        listStatus: $('destinations-status'),
        form: $('dest-form'),
        formTitle: $('form-title'),
        secret: $('f-secret'),
        secretHelp: $('f-secret-help'),
        publicKey: $('f-public'),
        baseUrl: $('f-baseurl'),
        name: $('f-name'),
        privacy: $('f-privacy'),
        enabled: $('f-enabled'),
        sampling: $('f-sampling'),
        test: $('f-test'),
        save: $('f-save'),
        cancel: $('f-cancel'),
        result: $('f-result'),
        deleteDialog: $('delete-dialog'),
        deleteText: $('delete-text'),
    };
    const SECRET_HELP_ADD = ui.secretHelp.textContent;
    const saveHelp = $('f-save-help');
    const SAVE_HELP_ADD = saveHelp.textContent;
    const SAVE_HELP_EDIT = 'A new Secret Key, Public Key or Base URL needs a passing Test Connection first, and ' +
        'Beacon tests it again when saving; other changes save directly.';

    let key = null;
    let signedIn = false;
    let signingIn = false;
    let refreshTimer = null;
    let refreshing = false;
    const cards = new Map();   // destination id -> {li, data, fields, status, title}
    let editing = null;        // the destination being edited; null while adding
    let passedSig = null;      // connection values that last passed Test Connection
    let resultSig = null;      // connection values the shown test result is about
    let formBusy = false;
    let uid = 0;
    const nextId = (prefix) => `${prefix}-${++uid}`;

    // ---------------------------------------------------------------------------------------
    // API

    class ApiError extends Error {
        constructor(message, status, error) {
            super(message);
            this.status = status;
            this.error = error ?? null;
        }
    }

    async function api(method, path, body) {
        const headers = { authorization: `Bearer ${key}` };
        if (body !== undefined) headers['content-type'] = 'application/json';
        let res;
        try {
            res = await fetch(path, {
                method,
                headers,
                body: body === undefined ? undefined : JSON.stringify(body),
                cache: 'no-store',
                signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
            });
        } catch (err) {
            throw new ApiError(err.name === 'TimeoutError' ? 'Beacon did not answer in time.' : 'Cannot reach Beacon.', 0);
        }
        let payload = null;
        try {
            payload = await res.json();
        } catch {
            // Not JSON (a proxy's error page, say): the status line is all there is to show.
        }
        if (!res.ok) {
            const message = payload?.error?.message || `Beacon answered ${res.status} ${res.statusText}`.trim();
            const err = new ApiError(message, res.status, payload?.error);
            // A revoked key makes every later call fail too: go back to sign-in at once.
            if ((res.status === 401 || res.status === 403) && signedIn) signOut(message);
            throw err;
        }
        return payload?.data;
    }

    const destPath = (id) => `${API}/destinations/${encodeURIComponent(id)}`;

    // ---------------------------------------------------------------------------------------
    // Small DOM helpers

    function make(tag, props = {}, ...children) {
        const node = document.createElement(tag);
        for (const [k, v] of Object.entries(props)) {
            if (k === 'text') node.textContent = v;
            else if (k === 'class') node.className = v;
            else node.setAttribute(k, v);
        }
        node.append(...children);
        return node;
    }

    function say(region, text, kind = '') {
        region.textContent = text;
        region.dataset.kind = kind;
    }

    /**
     * Runs fn with the button marked busy. aria-disabled rather than disabled: a disabled button
     * loses keyboard focus, and the user would have to find their place again.
     */
    async function whileBusy(button, fn) {
        if (button.getAttribute('aria-disabled') === 'true') return undefined;
        button.setAttribute('aria-disabled', 'true');
        try {
            return await fn();
        } finally {
            button.removeAttribute('aria-disabled');
        }
    }

    function formatTime(iso) {
        const t = new Date(iso);
        if (Number.isNaN(t.getTime())) return String(iso);
        const s = Math.round((Date.now() - t.getTime()) / 1000);
        let ago;
        if (s < 5) ago = 'just now';
        else if (s < 60) ago = `${s} s ago`;
        else if (s < 3600) ago = `${Math.floor(s / 60)} min ago`;
        else if (s < 86400) ago = `${Math.floor(s / 3600)} h ago`;
        else ago = `${Math.floor(s / 86400)} d ago`;
        return `${t.toLocaleString()} (${ago})`;
    }

    const TRANSPORTS = { otlp: 'OTLP', ingestion: 'Ingestion API (legacy)' };
    const transportLabel = (t) => TRANSPORTS[t] ?? (t ? String(t) : 'unknown');

    function rateLabel(r) {
        if (typeof r !== 'number') return String(r ?? '');
        return `${r} (${Number((r * 100).toPrecision(4))}%)`;
    }

    // ---------------------------------------------------------------------------------------
    // Sign in and out

    async function signIn(candidate) {
        key = candidate;
        signingIn = true;
        say(ui.signinStatus, 'Signing in…');
        let state;
        try {
            state = await api('GET', API);
        } catch (err) {
            signingIn = false;
            key = null;
            sessionStorage.removeItem(KEY_STORAGE);
            const why = err.status === 401 || err.status === 403 ? `This key cannot sign in: ${err.message}` : err.message;
            say(ui.signinStatus, why, 'error');
            return false;
        }
        signingIn = false;
        signedIn = true;
        sessionStorage.setItem(KEY_STORAGE, candidate);
        say(ui.signinStatus, '');
        ui.signinKey.value = '';
        ui.signinView.hidden = true;
        ui.settingsView.hidden = false;
        ui.signOut.hidden = false;
        showBroadcast(state);
        await refreshDestinations();
        clearInterval(refreshTimer);
        refreshTimer = setInterval(() => {
            if (!refreshing) refreshDestinations();
        }, REFRESH_MS);
        return true;
    }

    function signOut(reason = '') {
        key = null;
        signedIn = false;
        sessionStorage.removeItem(KEY_STORAGE);
        clearInterval(refreshTimer);
        refreshTimer = null;
        for (const card of cards.values()) card.li.remove();
        cards.clear();
        resetForm();
        say(ui.broadcastStatus, '');
        say(ui.listStatus, '');
        ui.settingsView.hidden = true;
        ui.signOut.hidden = true;
        ui.signinView.hidden = false;
        say(ui.signinStatus, reason ? `Signed out: ${reason}` : 'Signed out.', reason ? 'error' : '');
        ui.signinKey.focus();
    }

    ui.signinForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        const candidate = ui.signinKey.value.trim();
        // One attempt at a time: a late answer to an earlier one must not undo a later one.
        if (!candidate || signingIn) return;
        if (await signIn(candidate)) ui.settingsTitle.focus();
    });
    ui.signOut.addEventListener('click', () => signOut());

    // ---------------------------------------------------------------------------------------
    // Broadcast switch

    function showBroadcast(state) {
        ui.broadcast.disabled = false;
        ui.broadcast.checked = state?.enabled === true;
        say(ui.broadcastStatus, ui.broadcast.checked ? 'Broadcast is on.' : 'Broadcast is off.');
    }

    // While a change is in flight, further clicks would race it: ignore them.
    ui.broadcast.addEventListener('click', (e) => {
        if (ui.broadcast.getAttribute('aria-busy') === 'true') e.preventDefault();
    });
    ui.broadcast.addEventListener('change', async () => {
        const wanted = ui.broadcast.checked;
        ui.broadcast.setAttribute('aria-busy', 'true');
        say(ui.broadcastStatus, wanted ? 'Turning Broadcast on…' : 'Turning Broadcast off…');
        try {
            showBroadcast(await api('PUT', API, { enabled: wanted }));
        } catch (err) {
            ui.broadcast.checked = !wanted;
            say(ui.broadcastStatus, `Not changed: ${err.message}`, 'error');
        } finally {
            ui.broadcast.removeAttribute('aria-busy');
        }
    });

    // ---------------------------------------------------------------------------------------
    // Destination list

    const FIELDS = [
        ['type', 'Type'],
        ['enabled', 'Enabled'],
        ['privacy', 'Privacy mode'],
        ['sampling', 'Sampling rate'],
        ['baseUrl', 'Base URL'],
        ['publicKey', 'Public key'],
        ['secretKey', 'Secret key'],
        ['transport', 'Transport'],
        ['health', 'Health'],
        ['lastDelivery', 'Last delivery'],
        ['lastError', 'Last error'],
        ['delivered', 'Delivered'],
        ['backlog', 'Waiting'],
        ['dropped', 'Dropped'],
    ];

    const DROP_REASONS = {
        rejected: 'refused by the destination',
        spoolFull: 'spool full',
        queueFull: 'queue full',
        corrupt: 'unreadable in the spool',
        spoolError: 'spool write failed',
        gaveUp: 'gave up',
        shutdown: 'at shutdown',
    };

    function bytesLabel(n) {
        if (!n) return '0 B';
        const units = ['B', 'KiB', 'MiB', 'GiB'];
        let i = 0;
        while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
        return `${i ? n.toFixed(1) : n} ${units[i]}`;
    }

    async function refreshDestinations() {
        refreshing = true;
        try {
            const list = await api('GET', `${API}/destinations`);
            if (!signedIn) return;   // signed out while the answer was on its way
            renderDestinations(Array.isArray(list) ? list : []);
            if (ui.listStatus.dataset.kind === 'stale') say(ui.listStatus, '');
        } catch (err) {
            if (key) say(ui.listStatus, `Could not load destinations: ${err.message}`, 'stale');
        } finally {
            refreshing = false;
        }
    }

    /**
     * Updates cards in place (keyed by id) rather than rebuilding the list, so that the 5 s
     * refresh keeps keyboard focus and the per-card messages.
     */
    function renderDestinations(list) {
        const seen = new Set();
        list.forEach((d, i) => {
            seen.add(d.id);
            let card = cards.get(d.id);
            if (!card) {
                card = createCard(d);
                cards.set(d.id, card);
            }
            updateCard(card, d);
            // Moving a node drops focus inside it, so only move cards that are out of place.
            if (ui.list.children[i] !== card.li) ui.list.insertBefore(card.li, ui.list.children[i] ?? null);
        });
        for (const [id, card] of cards) {
            if (seen.has(id)) continue;
            const hadFocus = card.li.contains(document.activeElement);
            card.li.remove();
            cards.delete(id);
            if (hadFocus) ui.listTitle.focus();
        }
        ui.listEmpty.hidden = cards.size > 0;
    }

    function createCard(d) {
        const titleId = nextId('dest-title');
        const title = make('h3', { id: titleId });
        const badge = make('span', { class: 'badge' });
        const fields = {};
        const facts = make('dl', { class: 'facts' });
        for (const [name, label] of FIELDS) {
            const termId = nextId('dest-term');
            // aria-labelledby makes each value findable by its label (e.g. "Last delivery").
            fields[name] = make('dd', { 'aria-labelledby': termId });
            facts.append(make('div', { class: `fact fact-${name}` }, make('dt', { id: termId, text: label }), fields[name]));
        }
        const status = make('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
        const button = (text, cls = 'secondary') =>
            make('button', { type: 'button', class: cls, 'aria-describedby': titleId, text });
        const bTest = button('Test');
        const bTrace = button('Send test trace');
        const bEdit = button('Edit');
        const bDelete = button('Delete', 'danger');
        const li = make('li', {}, make('article', { class: 'dest', 'aria-labelledby': titleId },
            make('header', {}, title, badge), facts,
            make('div', { class: 'actions' }, bTest, bTrace, bEdit, bDelete), status));
        const card = { li, data: d, fields, status, title, badge };

        bTest.addEventListener('click', () => whileBusy(bTest, async () => {
            say(status, 'Testing…');
            try {
                const r = await api('POST', `${destPath(card.data.id)}/test`);
                say(status, r?.message ?? (r?.ok ? 'Connection works.' : 'Connection failed.'), r?.ok ? 'ok' : 'error');
            } catch (err) {
                say(status, err.message, 'error');
            }
        }));
        bTrace.addEventListener('click', () => whileBusy(bTrace, async () => {
            say(status, 'Sending a test trace…');
            try {
                const r = await api('POST', `${destPath(card.data.id)}/send-test-trace`);
                if (r?.ok) say(status, `Test trace sent (trace id ${r.traceId}). Look for "Beacon Test Trace" in Langfuse.`, 'ok');
                else say(status, `Test trace not sent: ${r?.message ?? 'unknown error'}`, 'error');
            } catch (err) {
                say(status, err.message, 'error');
            }
        }));
        bEdit.addEventListener('click', () => startEdit(card.data));
        bDelete.addEventListener('click', async () => {
            if (!(await confirmDelete(card.data))) return;
            await whileBusy(bDelete, async () => {
                say(status, 'Deleting…');
                try {
                    await api('DELETE', destPath(card.data.id));
                } catch (err) {
                    say(status, err.message, 'error');
                    return;
                }
                if (editing?.id === card.data.id) resetForm();
                say(ui.listStatus, `Deleted "${card.data.name}".`, 'ok');
                renderDestinations([...cards.values()].map((c) => c.data).filter((x) => x.id !== card.data.id));
                ui.listTitle.focus();
            });
        });
        return card;
    }

    function updateCard(card, d) {
        card.data = d;
        const h = d.health ?? {};
        const c = d.config ?? {};
        card.title.textContent = d.name || '(unnamed)';
        card.badge.textContent = d.type === 'langfuse' ? 'Langfuse' : String(d.type ?? '');
        const f = card.fields;
        f.type.textContent = d.type === 'langfuse' ? 'Langfuse' : String(d.type ?? '');
        f.enabled.textContent = d.enabled ? 'Yes' : 'No';
        f.privacy.textContent = d.privacyMode ? 'On' : 'Off';
        f.sampling.textContent = rateLabel(d.samplingRate);
        f.baseUrl.textContent = c.baseUrl ?? DEFAULT_BASE_URL;
        f.publicKey.textContent = c.publicKey ?? '';
        f.secretKey.replaceChildren(make('code', { text: c.secretKey ?? '' }));
        f.transport.textContent = transportLabel(d.transport);
        if (h.lastSuccessAt) {
            f.lastDelivery.replaceChildren(make('time', { datetime: h.lastSuccessAt, text: formatTime(h.lastSuccessAt) }));
        } else {
            f.lastDelivery.textContent = 'never';
        }
        f.lastError.textContent = h.lastError
            ? (h.lastErrorAt ? `${h.lastError} (${formatTime(h.lastErrorAt)})` : String(h.lastError))
            : 'none';
        f.delivered.textContent = String(h.delivered ?? 0);
        f.health.textContent = h.healthy === false
            ? `Unhealthy: ${h.unhealthyReason ?? h.lastError ?? 'credentials refused'}`
            : 'Healthy';
        f.backlog.textContent = h.backlog
            ? `${h.backlog} record(s), ${bytesLabel(h.backlogBytes ?? 0)}${h.retried ? `, ${h.retried} retries so far` : ''}`
            : 'none';
        const reasons = Object.entries(h.droppedByReason ?? {})
            .filter(([, n]) => n > 0)
            .map(([k, n]) => `${n} ${DROP_REASONS[k] ?? k}`);
        f.dropped.textContent = h.dropped ? `${h.dropped} (${reasons.join(', ')})` : '0';
        card.li.querySelector('.dest').dataset.healthy = h.healthy === false ? 'false' : 'true';
    }

    function confirmDelete(d) {
        const dlg = ui.deleteDialog;
        ui.deleteText.textContent = `"${d.name}" will stop receiving traces, and its settings are removed. This cannot be undone.`;
        return new Promise((resolve) => {
            dlg.returnValue = '';
            // Escape closes the dialog with an empty returnValue, which counts as "no".
            dlg.addEventListener('close', () => resolve(dlg.returnValue === 'delete'), { once: true });
            dlg.showModal();
        });
    }

    // ---------------------------------------------------------------------------------------
    // Add / edit form

    function connection() {
        return {
            publicKey: ui.publicKey.value.trim(),
            secretKey: ui.secret.value.trim(),
            baseUrl: ui.baseUrl.value.trim() || DEFAULT_BASE_URL,
        };
    }
    const sig = () => JSON.stringify(connection());

    /** While editing: do the connection fields differ from what is stored (so PATCH re-tests)? */
    function connectionChanged() {
        const c = connection();
        const stored = editing.config ?? {};
        return c.secretKey !== '' || c.publicKey !== (stored.publicKey ?? '') ||
            c.baseUrl !== (stored.baseUrl || DEFAULT_BASE_URL);
    }

    function updateSaveState() {
        // An edit that leaves the connection alone is not re-tested by the server, so it needs
        // no test here either; anything else needs a pass for exactly these values.
        const needsTest = !editing || connectionChanged();
        ui.save.disabled = formBusy || (needsTest && passedSig !== sig());
    }

    ui.form.addEventListener('input', () => {
        // A result about other values would mislead: drop it once the values move on.
        if (resultSig !== null && resultSig !== sig()) {
            ui.result.replaceChildren();
            ui.result.dataset.kind = '';
            resultSig = null;
        }
        updateSaveState();
    });

    // Enter runs the next step: Test Connection until it passes, then Save. (A disabled Save
    // would otherwise make the browser ignore Enter altogether.)
    ui.form.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter' || e.isComposing || e.target.tagName !== 'INPUT') return;
        e.preventDefault();
        if (!ui.save.disabled) ui.form.requestSubmit(ui.save);
        else if (!formBusy) runTest();
    });

    function showTestResult(r, prefix = '') {
        const ok = r?.ok === true;
        const box = [make('p', { class: 'result-title', text: prefix + (ok ? 'Connection works.' : 'Connection failed.') })];
        if (r?.message) box.push(make('p', { text: r.message }));
        if (ok) {
            const project = r.projectId ? `${r.projectName ?? ''} (${r.projectId})` : (r.projectName ?? '');
            const facts = make('dl', { class: 'facts' });
            for (const [label, value] of [['Project', project], ['Server version', r.serverVersion ?? 'unknown'],
                ['Transport', transportLabel(r.transport)]]) {
                facts.append(make('div', { class: 'fact' }, make('dt', { text: label }), make('dd', { text: value })));
            }
            box.push(facts);
        } else if (r?.suggestedBaseUrl) {
            const url = String(r.suggestedBaseUrl);
            const use = make('button', { type: 'button', class: 'secondary', text: `Use ${url}` });
            use.addEventListener('click', () => {
                ui.baseUrl.value = url;
                ui.baseUrl.dispatchEvent(new Event('input', { bubbles: true }));
                runTest();
            });
            box.push(make('p', {}, use));
        }
        ui.result.dataset.kind = ok ? 'ok' : 'error';
        ui.result.replaceChildren(...box);
    }

    function showFormMessage(text, kind = '') {
        ui.result.dataset.kind = kind;
        ui.result.replaceChildren(make('p', { text }));
    }

    async function runTest() {
        if (formBusy) return;
        const stored = editing && !connectionChanged();
        if (!stored) {
            for (const input of [ui.secret, ui.publicKey, ui.baseUrl]) {
                if (!input.reportValidity()) return;
            }
            if (editing && ui.secret.value.trim() === '') {
                // The stored secret never comes back to the browser, so new values can only be
                // tested with the secret typed in again.
                showFormMessage('Enter the Secret Key again to test a new Public Key or Base URL.', 'error');
                ui.secret.focus();
                return;
            }
        }
        const tested = sig();
        formBusy = true;
        updateSaveState();
        showFormMessage('Testing the connection…');
        await whileBusy(ui.test, async () => {
            try {
                const r = stored
                    ? await api('POST', `${destPath(editing.id)}/test`)
                    : await api('POST', `${API}/destinations/test`, createBody());
                passedSig = r?.ok ? tested : null;
                resultSig = tested;
                showTestResult(r);
            } catch (err) {
                passedSig = null;
                resultSig = tested;
                showFormMessage(err.message, 'error');
            }
        });
        formBusy = false;
        updateSaveState();
    }
    ui.test.addEventListener('click', runTest);

    function createBody() {
        const c = connection();
        const body = {
            type: 'langfuse',
            enabled: ui.enabled.checked,
            privacyMode: ui.privacy.checked,
            samplingRate: Number(ui.sampling.value),
            config: { publicKey: c.publicKey, secretKey: c.secretKey, baseUrl: c.baseUrl },
        };
        const name = ui.name.value.trim();
        if (name) body.name = name;   // left out, the server names it "Langfuse"
        return body;
    }

    /** Only the fields that changed, so that nothing else is overwritten (the secret above all). */
    function patchBody() {
        const d = editing;
        const c = connection();
        const body = {};
        const name = ui.name.value.trim() || 'Langfuse';
        if (name !== d.name) body.name = name;
        if (ui.enabled.checked !== d.enabled) body.enabled = ui.enabled.checked;
        if (ui.privacy.checked !== d.privacyMode) body.privacyMode = ui.privacy.checked;
        const rate = Number(ui.sampling.value);
        if (rate !== d.samplingRate) body.samplingRate = rate;
        const config = {};
        if (c.publicKey !== (d.config?.publicKey ?? '')) config.publicKey = c.publicKey;
        if (c.secretKey !== '') config.secretKey = c.secretKey;
        if (c.baseUrl !== (d.config?.baseUrl || DEFAULT_BASE_URL)) config.baseUrl = c.baseUrl;
        if (Object.keys(config).length > 0) body.config = config;
        return body;
    }

    ui.form.addEventListener('submit', async (e) => {
        e.preventDefault();
        updateSaveState();
        if (ui.save.disabled) return;
        const wasEditing = editing;
        let body;
        if (wasEditing) {
            body = patchBody();
            if (Object.keys(body).length === 0) {
                showFormMessage('Nothing changed.');
                return;
            }
        } else {
            body = createBody();
        }
        formBusy = true;
        updateSaveState();
        showFormMessage(wasEditing ? 'Saving…' : 'Testing the connection and saving…');
        let saved;
        try {
            saved = wasEditing
                ? await api('PATCH', destPath(wasEditing.id), body)
                : await api('POST', `${API}/destinations`, body);
        } catch (err) {
            formBusy = false;
            const test = err.error?.metadata?.test;
            if (test) {
                // The server's own test failed: the earlier pass no longer counts.
                passedSig = null;
                resultSig = sig();
                showTestResult(test, 'Not saved. ');
            } else {
                showFormMessage(`Not saved: ${err.message}`, 'error');
            }
            updateSaveState();
            if (document.activeElement === document.body) (ui.save.disabled ? ui.test : ui.save).focus();
            return;
        }
        formBusy = false;
        resetForm();
        showFormMessage(`Saved "${saved?.name ?? 'destination'}".`, 'ok');
        await refreshDestinations();
        const card = saved && cards.get(saved.id);
        if (card && wasEditing) card.title.closest('article').scrollIntoView({ block: 'nearest' });
        if (document.activeElement === document.body) ui.formTitle.focus();
    });

    function startEdit(d) {
        editing = d;
        ui.form.reset();
        ui.formTitle.textContent = `Edit "${d.name}"`;
        ui.secret.required = false;
        ui.secretHelp.textContent = `Leave empty to keep the stored secret key (${d.config?.secretKey ?? 'hidden'}).`;
        ui.secret.placeholder = 'unchanged';
        saveHelp.textContent = SAVE_HELP_EDIT;
        ui.publicKey.value = d.config?.publicKey ?? '';
        ui.baseUrl.value = d.config?.baseUrl ?? '';
        ui.name.value = d.name ?? '';
        ui.privacy.checked = d.privacyMode === true;
        ui.enabled.checked = d.enabled !== false;
        ui.sampling.value = String(d.samplingRate ?? 1);
        ui.cancel.hidden = false;
        passedSig = null;
        resultSig = null;
        ui.result.replaceChildren();
        updateSaveState();
        ui.formTitle.scrollIntoView({ block: 'start' });
        ui.formTitle.focus();
    }

    function resetForm() {
        editing = null;
        ui.form.reset();
        ui.formTitle.textContent = 'Add Langfuse';
        ui.secret.required = true;
        ui.secretHelp.textContent = SECRET_HELP_ADD;
        ui.secret.placeholder = 'sk-lf-...';
        saveHelp.textContent = SAVE_HELP_ADD;
        ui.cancel.hidden = true;
        passedSig = null;
        resultSig = null;
        formBusy = false;
        ui.result.replaceChildren();
        updateSaveState();
    }

    ui.cancel.addEventListener('click', () => {
        resetForm();
        ui.formTitle.focus();
    });

    // ---------------------------------------------------------------------------------------
    // Start

    const stored = sessionStorage.getItem(KEY_STORAGE);
    if (stored) {
        signIn(stored).then((ok) => {
            if (!ok) ui.signinView.hidden = false;
        });
    } else {
        ui.signinView.hidden = false;
        ui.signinKey.focus();
    }
})();
