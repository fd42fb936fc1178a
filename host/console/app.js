// The Sluice console: sign in with a token, then queues, dead letters, functions, schedules, topics
// and (for admins) tokens,
// all through the HTTP API. A hash router picks the page; each page returns a function that
// stops its timers and streams when the user leaves it.

import { Api, ApiError, seg } from './api.js';
import { h, clear, count, millis, rate, bytes, exactMillis, exactBytes, parseDuration, parseBytes, time, chart, bodyPreview, toast, confirmDialog, field } from './ui.js';

const REFRESH_MS = 2000;
const main = document.getElementById('main');
let api = null;
let me = null;
let leave = () => {};

// What the signed-in token may do; what it may not is not offered.
const can = {
  admin: false,
  deploy: false,
  read: false,
  produce: () => false,
};

function learn(identity) {
  const scopes = identity.scopes || [];
  can.admin = scopes.includes('admin');
  can.deploy = can.admin || scopes.includes('deploy');
  can.read = can.deploy || scopes.includes('read');
  can.produce = (queue) => can.admin || scopes.includes('produce') || scopes.includes(`produce:${queue}`);
  can.produceQueues = scopes.filter((s) => s.startsWith('produce:')).map((s) => s.slice(8));
}

function fail(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut('Your token is no longer valid; sign in again.');
    return;
  }
  toast(error.message || String(error), 'error');
}

// Runs `action`; reports its failure instead of throwing.
async function attempt(action) {
  try {
    return await action();
  } catch (e) {
    fail(e);
    return undefined;
  }
}

function every(ms, tick) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    if (stopped) return;
    await tick();
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ---- sign in ----

function signInPage(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, placeholder: 'sluice_…' });
  const form = h('form', { class: 'card signin', onsubmit: async (e) => {
    e.preventDefault();
    const candidate = new Api(input.value.trim());
    try {
      const identity = await candidate.get('/v1/tokens/self');
      sessionStorage.setItem('sluice-token', input.value.trim());
      start(candidate, identity);
    } catch (err) {
      toast(err.status === 401 ? 'That token is not valid.' : err.message, 'error');
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', {}, 'Paste an API token. The console offers what its scopes allow: ', h('code', {}, 'admin'), ', ', h('code', {}, 'deploy'), ', ', h('code', {}, 'read'), ' or ', h('code', {}, 'produce'), '.'),
  message ? h('p', { class: 'note' }, message) : null,
  field('Token', input),
  h('button', { type: 'submit' }, 'Sign in'));
  clear(main, form);
  input.focus();
}

function signOut(message) {
  sessionStorage.removeItem('sluice-token');
  api = null;
  me = null;
  leave();
  leave = () => {};
  signInPage(message);
}

function start(client, identity) {
  api = client;
  me = identity;
  learn(identity);
  document.getElementById('nav').hidden = !can.read;
  document.getElementById('nav-tokens').hidden = !can.admin;
  document.getElementById('who').hidden = false;
  document.getElementById('who-name').textContent = `${identity.name || identity.id} · ${identity.scopes.join(', ')}`;
  if (!location.hash || location.hash === '#/' || location.hash === '#/signin') location.hash = '#/queues';
  else route();
}

// ---- queues ----

function depthChart(samples) {
  const times = samples.map((s) => s.at_ms);
  return chart('Depth', times, [
    { name: 'visible', cls: 's1', values: samples.map((s) => s.visible) },
    { name: 'in flight', cls: 's2', values: samples.map((s) => s.in_flight) },
    { name: 'delayed', cls: 's3', values: samples.map((s) => s.delayed) },
  ]);
}

function ageChart(samples) {
  return chart('Oldest age', samples.map((s) => s.at_ms), [
    { name: 'oldest', cls: 's4', values: samples.map((s) => s.oldest_age_ms ?? 0) },
  ], millis);
}

function rateChart(samples) {
  const times = samples.map((s) => s.at_ms);
  return chart('Rates', times, [
    { name: 'enqueue', cls: 's1', values: samples.map((s) => s.enqueued_per_s) },
    { name: 'ack', cls: 's5', values: samples.map((s) => s.acked_per_s) },
    { name: 'DLQ', cls: 's6', values: samples.map((s) => s.dead_lettered_per_s) },
  ], rate);
}

function stat(label, value, test) {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-value', 'data-test': test }, value), h('span', { class: 'stat-label' }, label));
}

function queueStats(stats) {
  return h('div', { class: 'stats' },
    stat('visible', count(stats.visible), 'visible'),
    stat('in flight', count(stats.in_flight), 'in-flight'),
    stat('delayed', count(stats.delayed), 'delayed'),
    stat('oldest', millis(stats.oldest_age_ms), 'oldest'));
}

// The create form; `update` refreshes its dead-letter choices as queues come and go.
function createQueueForm(onCreated) {
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_\\-]{1,80}', placeholder: 'orders' });
  const attempts = h('input', { name: 'max_attempts', type: 'number', min: 1, value: 5 });
  const dlq = h('select', { name: 'dead_letter_queue' }, h('option', { value: '' }, 'none'));
  let known = '';
  const form = h('form', { class: 'inline-form', 'data-test': 'create-queue', onsubmit: async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), max_attempts: Number(attempts.value) };
    if (dlq.value) body.dead_letter_queue = dlq.value;
    const created = await attempt(() => api.post('/v1/queues', body));
    if (created) {
      toast(`Created queue ${created.name}`);
      name.value = '';
      onCreated();
    }
  } }, field('New queue', name), field('Max attempts', attempts), field('Dead-letter queue', dlq), h('button', { type: 'submit' }, 'Create queue'));
  const update = (queues) => {
    const names = queues.map((q) => q.name).join('\n');
    if (names === known) return;
    known = names;
    const chosen = dlq.value;
    clear(dlq, h('option', { value: '' }, 'none'), queues.map((q) => h('option', { value: q.name, selected: q.name === chosen }, q.name)));
  };
  return { form, update };
}

// The queue list's columns: how each is read from a row, shown, and compared.
const QUEUE_COLUMNS = [
  { key: 'name', label: 'Queue', value: (r) => r.name },
  { key: 'visible', label: 'Visible', value: (r) => r.stats.visible, show: count, num: true },
  { key: 'in_flight', label: 'In flight', value: (r) => r.stats.in_flight, show: count, num: true },
  { key: 'delayed', label: 'Delayed', value: (r) => r.stats.delayed, show: count, num: true },
  { key: 'oldest', label: 'Oldest', value: (r) => r.stats.oldest_age_ms ?? -1, show: (v) => (v < 0 ? '–' : millis(v)), num: true },
  { key: 'consumer', label: 'Consumer', value: (r) => (r.consumer ? r.consumer.function : '') },
  { key: 'enqueued', label: 'Enqueue', value: (r) => r.live.enqueued_per_s ?? -1, show: (v) => (v < 0 ? '–' : rate(v)), num: true },
  { key: 'acked', label: 'Ack', value: (r) => r.live.acked_per_s ?? -1, show: (v) => (v < 0 ? '–' : rate(v)), num: true },
  { key: 'dead', label: 'Dead-letter', value: (r) => r.live.dead_lettered_per_s ?? -1, show: (v) => (v < 0 ? '–' : rate(v)), num: true },
];
const QUEUES_PER_PAGE = 20;

// The queue list as a table: searched by name, sorted by any column, a page at a time. Each
// refresh is three requests whatever the number of queues: the queues, their live rates (one
// series request with the last sample of each) and the functions (who consumes what).
function queuesPage() {
  if (!can.read) return producePage();
  const view = { sort: 'name', dir: 1, search: '', page: 0 };
  let rows = [];
  const formSlot = h('div');
  const search = h('input', { type: 'search', name: 'search', class: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter queues by name',
    oninput: () => { view.search = search.value.trim().toLowerCase(); view.page = 0; render(); } });
  const summary = h('span', { class: 'muted', 'data-test': 'queue-count' });
  const tableSlot = h('div', { class: 'card table-wrap' });
  const pager = h('div', { class: 'pager' });
  const title = h('div', { class: 'page-head' }, h('h1', {}, 'Queues'), h('span', { class: 'muted' }, 'rates per second, refreshed every 2 s'));
  clear(main, title, formSlot, h('div', { class: 'toolbar' }, search, summary), tableSlot, pager);
  const create = can.admin ? createQueueForm(() => refresh()) : null;
  if (create) clear(formSlot, create.form);

  const sortBy = (key) => {
    view.dir = view.sort === key ? -view.dir : (QUEUE_COLUMNS.find((c) => c.key === key).num ? -1 : 1);
    view.sort = key;
    render();
  };
  const render = () => {
    const column = QUEUE_COLUMNS.find((c) => c.key === view.sort);
    const shown = rows.filter((r) => r.name.toLowerCase().includes(view.search));
    shown.sort((a, b) => {
      const [x, y] = [column.value(a), column.value(b)];
      const order = typeof x === 'string' ? x.localeCompare(y) : x - y;
      return order * view.dir || a.name.localeCompare(b.name);
    });
    const pages = Math.max(1, Math.ceil(shown.length / QUEUES_PER_PAGE));
    view.page = Math.min(view.page, pages - 1);
    const first = view.page * QUEUES_PER_PAGE;
    const slice = shown.slice(first, first + QUEUES_PER_PAGE);
    summary.textContent = view.search ? `${plural(shown.length, 'queue')} of ${count(rows.length)} match` : plural(rows.length, 'queue');
    if (!rows.length) {
      clear(tableSlot, h('p', { class: 'empty' }, 'No queues yet.', can.admin ? ' Create one with the form above.' : ''));
      clear(pager);
      return;
    }
    const head = QUEUE_COLUMNS.map((c) => h('th', {
      class: c.num ? 'num' : null,
      'aria-sort': c.key === view.sort ? (view.dir > 0 ? 'ascending' : 'descending') : null,
    }, h('button', { type: 'button', class: 'sort', 'data-sort': c.key, onclick: () => sortBy(c.key) },
      c.label, c.key === view.sort ? (view.dir > 0 ? ' ▲' : ' ▼') : '')));
    clear(tableSlot, h('table', { class: 'table queues', 'data-test': 'queues' },
      h('thead', {}, h('tr', {}, head)),
      h('tbody', {}, slice.map((r) => h('tr', { 'data-queue': r.name },
        h('td', { class: 'nowrap' },
          h('a', { href: `#/queues/${seg(r.name)}`, class: 'queue-name' }, r.name),
          r.isDlq ? h('span', { class: 'badge dlq' }, 'dead letters') : null,
          r.settings.dead_letter_queue ? h('span', { class: 'muted', title: 'dead-letter queue' }, ` → ${r.settings.dead_letter_queue}`) : null),
        QUEUE_COLUMNS.slice(1).map((c) => (c.key === 'consumer'
          ? h('td', { 'data-test': 'consumer' }, r.consumer
            ? [h('a', { href: `#/functions/${seg(r.consumer.function)}` }, r.consumer.function), r.consumer.paused ? h('span', { class: 'badge paused' }, 'paused') : null]
            : h('span', { class: 'muted' }, '–'))
          : h('td', { class: 'num', 'data-test': c.key }, c.show(c.value(r))))))))));
    clear(pager,
      h('span', { class: 'muted', 'data-test': 'page' }, shown.length ? `${count(first + 1)}–${count(first + slice.length)} of ${count(shown.length)}` : 'no queue matches'),
      h('button', { type: 'button', class: 'secondary small', disabled: view.page === 0, onclick: () => { view.page -= 1; render(); } }, '← Previous'),
      h('button', { type: 'button', class: 'secondary small', disabled: view.page >= pages - 1, onclick: () => { view.page += 1; render(); } }, 'Next →'));
  };
  const refresh = async () => {
    const [answer, series, functions] = await Promise.all([
      attempt(() => api.get('/v1/queues')),
      api.get('/v1/series?last=1').catch(() => ({ queues: {} })),
      api.get('/v1/functions').catch(() => ({ functions: [] })),
    ]);
    if (!answer) return;
    const queues = answer.queues;
    if (create) create.update(queues);
    const dlqs = new Set(queues.map((q) => q.settings.dead_letter_queue).filter(Boolean));
    const consumers = new Map(functions.functions.filter((f) => f.trigger).map((f) => [f.trigger.queue, f.trigger]));
    rows = queues.map((q) => ({
      ...q,
      isDlq: dlqs.has(q.name),
      consumer: consumers.get(q.name),
      live: (series.queues[q.name] || []).at(-1) || {},
    }));
    render();
  };
  return every(REFRESH_MS, refresh);
}

function producePage() {
  const queue = h('input', { name: 'queue', required: true, value: can.produceQueues[0] || '' });
  clear(main, h('div', { class: 'page-head' }, h('h1', {}, 'Send')),
    h('p', { class: 'muted' }, 'This token may send messages only; it cannot read queues.'),
    field('Queue', queue),
    sendForm(() => queue.value.trim(), () => {}));
  return () => {};
}

function sendForm(queueName, onSent) {
  const body = h('textarea', { name: 'body', rows: 3, placeholder: '{"item": "book"}' });
  const attrs = h('input', { name: 'attributes', placeholder: 'customer=42, region=eu' });
  return h('form', { class: 'card send', 'data-test': 'send', onsubmit: async (e) => {
    e.preventDefault();
    const attributes = {};
    for (const pair of attrs.value.split(',').map((p) => p.trim()).filter(Boolean)) {
      const at = pair.indexOf('=');
      if (at < 1) {
        toast(`attribute "${pair}" is not KEY=VALUE`, 'error');
        return;
      }
      attributes[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
    const sent = await attempt(() => api.post(`/v1/queues/${seg(queueName())}/messages/batch`, { messages: [{ body: body.value, attributes }] }));
    if (sent) {
      toast(`Sent message ${sent.ids[0]}`);
      body.value = '';
      onSent();
    }
  } }, h('h2', {}, 'Send a message'), field('Body', body), field('Attributes', attrs, 'KEY=VALUE, comma-separated'), h('button', { type: 'submit' }, 'Send'));
}

const ATTR_REASON = 'sluice-dead-letter-reason';
const ATTR_ATTEMPTS = 'sluice-attempts';
const ATTR_SOURCE = 'sluice-source-queue';

function messageList(queue, messages, deadLetters, reload) {
  if (!messages.length) return h('p', { class: 'empty' }, deadLetters ? 'No dead letters.' : 'No messages.');
  const selected = new Set();
  const redrive = async (ids) => {
    const body = ids ? { ids } : {};
    const answer = await attempt(() => api.post(`/v1/queues/${seg(queue)}/redrive`, body));
    if (answer) {
      toast(`Redrove ${answer.moved} message${answer.moved === 1 ? '' : 's'}`);
      reload();
    }
  };
  const remove = async (id) => {
    if (!await confirmDialog(`Delete message ${id} from ${queue}? It cannot be recovered.`, 'Delete')) return;
    if (await attempt(() => api.delete(`/v1/queues/${seg(queue)}/messages/${seg(id)}`)) !== undefined) {
      toast(`Deleted message ${id}`);
      reload();
    }
  };
  const rows = messages.map((m) => {
    const a = m.attributes || {};
    const others = Object.entries(a).filter(([k]) => !deadLetters || ![ATTR_REASON, ATTR_ATTEMPTS, ATTR_SOURCE, 'sluice-source-id'].includes(k));
    return h('article', { class: 'message', 'data-id': m.id },
      h('div', { class: 'message-head' },
        deadLetters && can.admin ? h('input', { type: 'checkbox', 'aria-label': `select message ${m.id}`, onchange: (e) => { if (e.target.checked) selected.add(m.id); else selected.delete(m.id); } }) : null,
        h('span', { class: 'mono' }, `#${m.id}`),
        h('span', { class: 'muted' }, time(m.enqueued_at_ms)),
        deadLetters ? null : h('span', { class: 'muted' }, `attempt ${m.attempt}`),
        h('span', { class: 'badge', 'data-test': 'priority', title: 'priority: 0 (lowest) to 9 (highest)' }, `priority ${m.priority}`),
        m.group ? h('span', { class: 'badge', 'data-test': 'group', title: 'messages of one group are delivered in order, one batch at a time' }, `group ${m.group}`) : null,
        can.admin ? h('span', { class: 'row-actions' },
          deadLetters ? h('button', { type: 'button', class: 'small', onclick: () => redrive([m.id]) }, 'Redrive') : null,
          h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete message ${m.id}`, onclick: () => remove(m.id) }, 'Delete')) : null),
      deadLetters ? h('dl', { class: 'dead' },
        h('dt', {}, 'reason'), h('dd', { 'data-test': 'reason' }, a[ATTR_REASON] || '–'),
        h('dt', {}, 'attempts'), h('dd', {}, a[ATTR_ATTEMPTS] || '–'),
        h('dt', {}, 'source'), h('dd', {}, a[ATTR_SOURCE] ? h('a', { href: `#/queues/${seg(a[ATTR_SOURCE])}` }, a[ATTR_SOURCE]) : '–')) : null,
      others.length ? h('div', { class: 'attrs' }, others.map(([k, v]) => h('span', { class: 'attr' }, `${k}=${v}`))) : null,
      bodyPreview(m));
  });
  return h('div', { class: 'messages' },
    deadLetters && can.admin ? h('div', { class: 'toolbar' },
      h('button', { type: 'button', onclick: () => selected.size ? redrive([...selected]) : toast('Select messages first', 'error') }, 'Redrive selected'),
      h('button', { type: 'button', onclick: () => redrive(null) }, 'Redrive all')) : null,
    rows);
}

// Durations and sizes are shown and typed in human units ("30s", "4d", "256 KiB"); hovering a
// field shows the raw value the API stores.
const HUMAN = {
  duration: { show: exactMillis, parse: parseDuration, raw: (v) => `${count(v)} ms`, example: '30s, 1h 30m, 4d or milliseconds' },
  size: { show: exactBytes, parse: parseBytes, raw: (v) => `${count(v)} bytes`, example: '256 KiB, 1 MiB or bytes' },
};

function humanInput(name, value, kind, disabled) {
  const unit = HUMAN[kind];
  const input = h('input', { name, value: unit.show(value), title: unit.raw(value), disabled, 'data-kind': kind, spellcheck: 'false' });
  input.addEventListener('input', () => {
    const parsed = unit.parse(input.value);
    input.title = parsed === null ? `not a ${kind === 'size' ? 'size' : 'duration'}: write ${unit.example}` : unit.raw(parsed);
  });
  return input;
}

function settingsForm(queue, settings, queues) {
  const disabled = !can.admin;
  const num = (name, value, label, hint) => field(label, h('input', { name, type: 'number', min: 0, value: value ?? '', disabled }), hint);
  const human = (name, value, label, kind, hint) => field(label, humanInput(name, value, kind, disabled), hint);
  const dlq = h('select', { name: 'dead_letter_queue', disabled },
    h('option', { value: '' }, 'none'),
    queues.filter((q) => q.name !== queue).map((q) => h('option', { value: q.name, selected: q.name === settings.dead_letter_queue }, q.name)));
  const jitter = h('input', { type: 'checkbox', name: 'jitter', checked: settings.backoff.jitter, disabled });
  const form = h('form', { class: 'card settings', 'data-test': 'settings', onsubmit: async (e) => {
    e.preventDefault();
    const v = (n) => form.elements[n].value;
    const opt = (n) => (v(n) === '' ? null : Number(v(n)));
    // Each human field read back into the API's unit; the first that does not read is named.
    const read = {};
    for (const input of form.querySelectorAll('input[data-kind]')) {
      const unit = HUMAN[input.dataset.kind];
      read[input.name] = unit.parse(input.value);
      if (read[input.name] === null) {
        const label = input.closest('label').querySelector('span').textContent;
        toast(`${label}: "${input.value}" is not understood; write ${unit.example}`, 'error');
        input.focus();
        return;
      }
    }
    const patch = {
      visibility_timeout_ms: read.visibility_timeout_ms,
      max_attempts: Number(v('max_attempts')),
      retention_ms: read.retention_ms,
      max_message_bytes: read.max_message_bytes,
      dedup_window_ms: read.dedup_window_ms,
      max_depth: opt('max_depth'),
      dead_letter_queue: dlq.value || null,
      backoff: {
        initial_ms: read.initial_ms,
        multiplier: Number(v('multiplier')),
        max_ms: read.max_ms,
        jitter: jitter.checked,
      },
    };
    const saved = await attempt(() => api.patch(`/v1/queues/${seg(queue)}`, patch));
    if (saved) {
      toast('Settings saved');
      for (const input of form.querySelectorAll('input[data-kind]')) {
        const value = input.name in saved.settings ? saved.settings[input.name] : saved.settings.backoff[input.name];
        input.value = HUMAN[input.dataset.kind].show(value);
        input.title = HUMAN[input.dataset.kind].raw(value);
      }
    }
  } },
  h('h2', {}, 'Settings'),
  h('div', { class: 'fields' },
    human('visibility_timeout_ms', settings.visibility_timeout_ms, 'Visibility timeout', 'duration'),
    num('max_attempts', settings.max_attempts, 'Max attempts'),
    field('Dead-letter queue', dlq),
    human('retention_ms', settings.retention_ms, 'Retention', 'duration'),
    human('max_message_bytes', settings.max_message_bytes, 'Max message size', 'size'),
    human('dedup_window_ms', settings.dedup_window_ms, 'Dedup window', 'duration'),
    num('max_depth', settings.max_depth, 'Max depth', 'empty: unbounded'),
    human('initial_ms', settings.backoff.initial_ms, 'Backoff initial', 'duration'),
    field('Backoff multiplier', h('input', { name: 'multiplier', type: 'number', step: 'any', min: 1, value: settings.backoff.multiplier, disabled })),
    human('max_ms', settings.backoff.max_ms, 'Backoff max', 'duration'),
    h('label', { class: 'check' }, jitter, 'Backoff jitter')),
  can.admin ? h('button', { type: 'submit' }, 'Save settings') : h('p', { class: 'muted' }, 'Read-only: changing settings needs an admin token.'));
  return form;
}

const PEEK_PAGE = 50;

// Pages through a queue's messages oldest first (by id): the next page starts after the last id
// shown, and `starts` holds where each page so far began, so "Previous" can go back. `load()`
// fetches the page in view and hands it to `show(messages)`; `note` says which it is ("51–100",
// plus `of` when given). `filter()` gives query parameters every page asks with (a reason), so
// paging stays within it; `restart()` goes back to the first page (after the filter changed).
function peekPager(queue, show, of = () => null, filter = () => ({})) {
  const starts = [null];
  let messages = [];
  const note = h('span', { class: 'muted' });
  const previous = h('button', { type: 'button', class: 'secondary small', disabled: true, onclick: () => { starts.pop(); load(); } }, '← Previous');
  const next = h('button', { type: 'button', class: 'secondary small', disabled: true, onclick: () => { starts.push(messages.at(-1).id); load(); } }, `Next ${PEEK_PAGE} →`);
  const load = async () => {
    const query = new URLSearchParams({ limit: String(PEEK_PAGE), ...filter() });
    if (starts.at(-1) !== null) query.set('after', starts.at(-1));
    const answer = await attempt(() => api.get(`/v1/queues/${seg(queue)}/messages?${query}`));
    if (!answer) return;
    messages = answer.messages;
    const skipped = (starts.length - 1) * PEEK_PAGE;
    const total = of();
    note.textContent = messages.length
      ? `${count(skipped + 1)}–${count(skipped + messages.length)}${total === null ? '' : ` of ${count(total)}`}, oldest first`
      : '';
    previous.disabled = starts.length === 1;
    next.disabled = messages.length < PEEK_PAGE;
    show(messages);
  };
  const restart = () => {
    starts.length = 1;
    return load();
  };
  return { load, restart, note, buttons: [previous, next] };
}

function queuePage(name) {
  const head = h('div', { class: 'page-head' }, h('h1', {}, h('a', { href: '#/queues', class: 'crumb' }, 'Queues'), ' / ', name));
  const statsSlot = h('div');
  const chartsSlot = h('div', { class: 'charts wide' });
  const side = h('div', { class: 'side' });
  const peekSlot = h('div');
  const pager = peekPager(name, (messages) => clear(peekSlot, messageList(name, messages, isDlq, () => { loadPeek(); refresh(); })));
  const loadPeek = pager.load;
  pager.note.dataset.test = 'peek-page';
  const peekHead = h('div', { class: 'section-head' }, h('h2', {}, 'Messages'), pager.note,
    h('span', { class: 'pager' }, pager.buttons, h('button', { type: 'button', class: 'secondary small', onclick: () => loadPeek() }, 'Refresh')));
  clear(main, head, statsSlot, chartsSlot, h('div', { class: 'columns' }, h('div', { class: 'col-main' }, peekHead, peekSlot), side));
  let isDlq = false;
  let sideShown = false;
  const refresh = async () => {
    const [queue, series, all] = await Promise.all([
      attempt(() => api.get(`/v1/queues/${seg(name)}`)),
      api.get(`/v1/queues/${seg(name)}/series`).catch(() => ({ samples: [] })),
      api.get('/v1/queues').catch(() => ({ queues: [] })),
    ]);
    if (!queue) return;
    const wasDlq = isDlq;
    isDlq = all.queues.some((q) => q.settings.dead_letter_queue === name);
    clear(statsSlot, queueStats(queue.stats), h('p', { class: 'muted totals' },
      `enqueued ${count(queue.stats.enqueued_total)} · acknowledged ${count(queue.stats.acked_total)} · retried ${count(queue.stats.retried_total)} · dead-lettered ${count(queue.stats.dead_lettered_total)} · dropped ${count(queue.stats.dropped_total)} · expired ${count(queue.stats.expired_total)}`));
    // Not while the pointer reads a chart: the readout would vanish under it.
    if (!chartsSlot.matches(':hover')) clear(chartsSlot, depthChart(series.samples), ageChart(series.samples), rateChart(series.samples));
    if (!sideShown) {
      sideShown = true;
      clear(side,
        can.produce(name) ? sendForm(() => name, () => { loadPeek(); refresh(); }) : null,
        settingsForm(name, queue.settings, all.queues),
        can.admin ? h('div', { class: 'card danger-zone' }, h('h2', {}, 'Danger zone'),
          h('button', { type: 'button', class: 'danger', onclick: async () => {
            if (!await confirmDialog(`Purge every message of ${name}? This cannot be undone.`, 'Purge')) return;
            const answer = await attempt(() => api.post(`/v1/queues/${seg(name)}/purge`));
            if (answer) {
              toast(`Purged ${plural(answer.purged, 'message')}`);
              loadPeek();
              refresh();
            }
          } }, 'Purge queue'),
          h('button', { type: 'button', class: 'danger', onclick: async () => {
            if (!await confirmDialog(`Delete queue ${name} and its messages?`, 'Delete queue')) return;
            if (await attempt(() => api.delete(`/v1/queues/${seg(name)}`)) !== undefined) {
              toast(`Deleted queue ${name}`);
              location.hash = '#/queues';
            }
          } }, 'Delete queue')) : null);
    }
    if (wasDlq !== isDlq) loadPeek();
  };
  loadPeek();
  return every(REFRESH_MS, refresh);
}

// The dead-letter queues left open, kept for the browser tab's session: coming back (or
// reloading) finds them open.
const openDlqs = {
  all: () => new Set(JSON.parse(sessionStorage.getItem('sluice-open-dlqs') || '[]')),
  has: (dlq) => openDlqs.all().has(dlq),
  set: (dlq, open) => {
    const all = openDlqs.all();
    if (open) all.add(dlq);
    else all.delete(dlq);
    sessionStorage.setItem('sluice-open-dlqs', JSON.stringify([...all]));
  },
};

// Every dead-letter queue as a collapsed section; opening one peeks a page of it, which can be
// narrowed to one reason and paged through.
function deadLettersPage() {
  const body = h('div');
  clear(main, h('div', { class: 'page-head' }, h('h1', {}, 'Dead letters'), h('span', { class: 'muted' }, 'messages out of attempts, with why they died; open a queue to see them')), body);
  const load = async () => {
    const answer = await attempt(() => api.get('/v1/queues'));
    if (!answer) return;
    const dlqs = [...new Set(answer.queues.map((q) => q.settings.dead_letter_queue).filter(Boolean))].sort();
    if (!dlqs.length) {
      clear(body, h('p', { class: 'empty' }, 'No queue has a dead-letter queue. Set one in a queue\'s settings.'));
      return;
    }
    clear(body, dlqs.map((dlq) => dlqSection(dlq,
      answer.queues.filter((q) => q.settings.dead_letter_queue === dlq).map((q) => q.name),
      answer.queues.find((q) => q.name === dlq),
      load)));
  };
  load();
  return () => {};
}

// The most reasons a dead-letter queue's filter offers (the most frequent).
const REASONS_SHOWN = 100;

function dlqSection(dlq, sources, info, reloadAll) {
  const held = info ? info.stats.visible + info.stats.delayed + info.stats.in_flight : 0;
  let loaded = false;
  // What each option of the reason filter asks the server for, by the option's index: every
  // message, one reason, or the messages with none. (Any text may be a reason, so the choice
  // is kept here rather than in the options' values.)
  let choices = [{ query: {}, total: held }];
  const reason = h('select', { name: 'reason', 'aria-label': `Filter ${dlq} by reason`, onchange: () => pager.restart() });
  const choice = () => choices[reason.selectedIndex] || choices[0];
  const list = h('div');
  const pager = peekPager(dlq, (page) => {
    clear(list, !page.length && reason.selectedIndex > 0
      ? h('p', { class: 'empty' }, 'No dead letter has that reason now.')
      : messageList(dlq, page, true, reloadAll));
  }, () => choice().total, () => choice().query);
  pager.note.dataset.test = 'dlq-page';
  // The whole queue's reasons with their counts, counted by the server, most frequent first.
  const loadReasons = async () => {
    const answer = await attempt(() => api.get(`/v1/queues/${seg(dlq)}/dead-letter-reasons?limit=${REASONS_SHOWN}`));
    if (!answer) return;
    const chosen = choice();
    choices = [{ query: {}, total: held, label: `every reason (${count(held)})` },
      ...answer.reasons.map((r) => ({ query: { reason: r.reason }, total: r.count, label: `${r.reason} (${count(r.count)})` })),
      ...(answer.without_reason ? [{ query: { no_reason: 'true' }, total: answer.without_reason, label: `(no reason given) (${count(answer.without_reason)})` }] : [])];
    const more = answer.distinct_reasons - answer.reasons.length;
    clear(reason, choices.map((c) => h('option', { value: c.query.reason ?? '' }, c.label)),
      more > 0 ? h('option', { disabled: true }, `… ${plural(more, 'rarer reason')} not listed`) : null);
    // The same choice as before, when the queue still holds it.
    reason.selectedIndex = Math.max(0, choices.findIndex((c) => JSON.stringify(c.query) === JSON.stringify(chosen.query)));
  };
  const load = async () => {
    loaded = true;
    await loadReasons();
    return pager.load();
  };
  const details = h('details', { class: 'card dlq', 'data-dlq': dlq, open: openDlqs.has(dlq), ontoggle: () => {
    openDlqs.set(dlq, details.open);
    if (details.open && !loaded) load();
  } },
  h('summary', { class: 'card-head' },
    h('a', { href: `#/queues/${seg(dlq)}`, class: 'queue-name' }, dlq),
    h('span', { class: 'badge dlq', 'data-test': 'held' }, plural(held, 'message')),
    h('span', { class: 'muted' }, `for ${sources.join(', ')}`)),
  h('div', { class: 'toolbar' }, h('label', { class: 'check' }, 'Reason', reason), pager.note, h('span', { class: 'pager' }, pager.buttons)),
  list);
  if (details.open) load();
  return details;
}

// ---- functions ----

function functionsPage() {
  const body = h('div');
  clear(main, h('div', { class: 'page-head' }, h('h1', {}, 'Functions')), body);
  const refresh = async () => {
    const answer = await attempt(() => api.get('/v1/functions'));
    if (!answer) return;
    if (!answer.functions.length) {
      clear(body, h('p', { class: 'empty' }, 'No functions yet. Deploy one with ', h('code', {}, 'sluice deploy'), '.'));
      return;
    }
    const details = await Promise.all(answer.functions.map((f) => api.get(`/v1/functions/${seg(f.name)}`).catch(() => f)));
    clear(body, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Function', 'Active version', 'Versions', 'Queue', 'Trigger', 'In flight'].map((t) => h('th', {}, t)))),
      h('tbody', {}, details.map((f) => h('tr', {},
        h('td', {}, h('a', { href: `#/functions/${seg(f.name)}` }, f.name)),
        h('td', { class: 'num' }, `v${f.active_version}`),
        h('td', { class: 'num' }, f.versions.length),
        h('td', {}, f.trigger ? h('a', { href: `#/queues/${seg(f.trigger.queue)}` }, f.trigger.queue) : '–'),
        h('td', {}, f.trigger ? h('span', { class: `badge ${f.trigger.state || ''}` }, f.trigger.state || (f.trigger.paused ? 'paused' : '')) : '–'),
        h('td', { class: 'num' }, f.trigger && f.trigger.in_flight !== undefined ? f.trigger.in_flight : '–'))))));
  };
  return every(REFRESH_MS, refresh);
}

function plural(n, word) {
  return `${count(n)} ${word}${n === 1 ? '' : 's'}`;
}

const OUTCOMES = ['ok', 'error', 'trap', 'panic', 'timeout', 'out_of_memory', 'stack_overflow'];

// How many messages of an `ok` batch the handler settled with `disposition` (retry or
// dead_letter): the batch succeeded, those messages did not.
function settled(i, disposition) {
  return (i.failures || []).filter((f) => f.disposition === disposition).length;
}

function invocationItem(i) {
  const mixed = i.outcome === 'ok' && settled(i, 'dead_letter');
  return h('details', { class: `invocation ${i.outcome === 'ok' ? 'good' : 'bad'}${mixed ? ' mixed' : ''}`, 'data-id': i.id },
    h('summary', {},
      h('span', { class: 'muted mono' }, time(i.started_at_ms)),
      h('span', { class: `badge ${i.outcome}`, 'data-test': 'outcome' }, i.outcome),
      i.dry_run ? h('span', { class: 'badge dry' }, 'dry run') : null,
      h('span', {}, `v${i.version}`),
      h('span', {}, `batch ${i.batch_size}`),
      h('span', { class: 'muted' }, `${i.duration_ms.toFixed(2)} ms`),
      i.sent ? h('span', { class: 'muted' }, `sent ${i.sent}`) : null,
      settled(i, 'dead_letter') ? h('span', { class: 'badge dlq', 'data-test': 'dead-lettered', title: 'messages of this batch the handler dead-lettered' }, `${settled(i, 'dead_letter')} dead-lettered`) : null,
      settled(i, 'retry') ? h('span', { class: 'badge paused', 'data-test': 'retried', title: 'messages of this batch the handler asked to retry' }, `${settled(i, 'retry')} retried`) : null,
      i.error ? h('span', { class: 'error-text' }, i.error) : null),
    i.failures && i.failures.length ? h('pre', { class: 'failures' }, JSON.stringify(i.failures, null, 2)) : null,
    h('pre', { class: 'logs' }, i.logs || '(no output)'));
}

// The function page's charts: the last hour, a minute a bucket.
const STATS_BUCKET_MS = 60 * 1000;

// The last hour of the function's invocations as the server counts them over its whole log
// (dry runs left out): per minute for the charts, and the same hour as one bucket for its
// totals and percentiles. The second request asks for exactly the first one's window, so both
// count the same invocations. Null when the request fails.
async function invocationStats(name) {
  const path = `/v1/functions/${seg(name)}/invocations/stats`;
  const minutes = await api.get(`${path}?bucket_ms=${STATS_BUCKET_MS}`).catch(() => null);
  if (!minutes) return null;
  const span = minutes.end_ms - minutes.start_ms;
  const whole = await api.get(`${path}?since_ms=${minutes.start_ms}&until_ms=${minutes.end_ms}&bucket_ms=${span}`).catch(() => null);
  if (!whole || whole.buckets.length !== 1) return null;
  const hour = whole.buckets[0];
  const buckets = minutes.buckets;
  return {
    count: hour.invocations,
    since: minutes.start_ms,
    failed: hour.errors,
    p50: hour.p50_ms,
    p95: hour.p95_ms,
    p99: hour.p99_ms,
    // Each point at its bucket's end: the last one is now.
    times: buckets.map((b) => b.start_ms + minutes.bucket_ms),
    perSecond: buckets.map((b) => b.invocations / (minutes.bucket_ms / 1000)),
    failedPct: buckets.map((b) => (b.invocations ? (100 * b.errors) / b.invocations : null)),
    p50s: buckets.map((b) => b.p50_ms),
    p95s: buckets.map((b) => b.p95_ms),
    p99s: buckets.map((b) => b.p99_ms),
  };
}

const percent = (v) => `${v < 10 && v > 0 ? v.toFixed(1) : Math.round(v)}%`;
const ms = (v) => `${v < 10 ? v.toFixed(2) : Math.round(v).toLocaleString('en-US')} ms`;

function statsView(stats) {
  if (!stats) return [h('p', { class: 'muted' }, 'Invocation stats are unavailable right now.')];
  if (!stats.count) return [h('p', { class: 'muted', 'data-test': 'function-stats' }, 'No invocations in the last hour: charts appear once the function has run.')];
  return [
    h('p', { class: 'muted totals', 'data-test': 'function-stats' },
      `last hour (since ${time(stats.since, false)}): ${plural(stats.count, 'invocation')}, ${count(stats.failed)} failed (${percent((100 * stats.failed) / stats.count)}), `,
      `duration p50 ${ms(stats.p50)}, p95 ${ms(stats.p95)}, p99 ${ms(stats.p99)}`),
    h('div', { class: 'charts wide' },
      chart('Invocations', stats.times, [{ name: 'batches', cls: 's1', values: stats.perSecond }], rate, 'latest'),
      chart('Failed', stats.times, [{ name: 'failed', cls: 's6', values: stats.failedPct }], percent, 'latest'),
      chart('Duration', stats.times, [
        { name: 'p50', cls: 's5', values: stats.p50s },
        { name: 'p95', cls: 's2', values: stats.p95s },
        { name: 'p99', cls: 's6', values: stats.p99s },
      ], ms, 'latest')),
  ];
}

// The active version's config: what the handler runs with. Environment values are write-only.
function configView(f) {
  const active = f.versions.find((v) => v.version === f.active_version);
  if (!active) return [];
  const c = active.config;
  const row = (label, value, test) => [h('dt', {}, label), h('dd', { 'data-test': test }, value)];
  return [
    h('h2', {}, `Config of v${active.version}`),
    h('dl', { class: 'dead' },
      row('consumes', f.trigger ? h('a', { href: `#/queues/${seg(f.trigger.queue)}` }, f.trigger.queue) : h('span', { class: 'muted' }, 'no queue'), 'consumes'),
      row('env', c.env_names.length ? c.env_names.map((e) => h('code', { class: 'attr' }, e)) : h('span', { class: 'muted' }, 'none'), 'env-names'),
      row('timeout', millis(c.timeout_ms)),
      row('memory', `${count(c.memory_mb)} MiB`),
      row('sends', `at most ${count(c.max_sends)} per batch`),
      row('outbound', c.allowed_outbound_hosts.length ? c.allowed_outbound_hosts.join(', ') : 'none')),
  ];
}

// Upload a new version (deploy): the component and its config. The active version's settings
// are offered again; its environment values cannot be (they are write-only), so they are typed.
function uploadForm(name, f, onUploaded) {
  const active = f.versions.find((v) => v.version === f.active_version);
  const c = active ? active.config : {};
  const file = h('input', { type: 'file', name: 'component', accept: '.wasm,application/wasm', required: true });
  const timeout = h('input', { name: 'timeout', value: c.timeout_ms ? exactMillis(c.timeout_ms) : '30s', spellcheck: 'false' });
  const memory = h('input', { name: 'memory_mb', type: 'number', min: 1, max: 1024, value: c.memory_mb || 128 });
  const env = h('textarea', { name: 'env', rows: 2, class: 'mono', spellcheck: 'false', placeholder: (c.env_names || []).length ? c.env_names.map((n) => `${n}=…`).join('\n') : 'NAME=value' });
  const form = h('form', { class: 'card', 'data-test': 'upload', onsubmit: async (e) => {
    e.preventDefault();
    const timeoutMs = parseDuration(timeout.value);
    if (timeoutMs === null) {
      toast(`Timeout: "${timeout.value}" is not understood; write ${HUMAN.duration.example}`, 'error');
      return;
    }
    const query = new URLSearchParams({ timeout_ms: String(timeoutMs), memory_mb: memory.value });
    for (const host of c.allowed_outbound_hosts || []) query.append('allowed_outbound_host', host);
    for (const key of ['max_outbound_requests', 'max_outbound_response_bytes', 'outbound_timeout_ms']) {
      if (c[key] !== undefined) query.set(key, String(c[key]));
    }
    for (const line of env.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
      if (line.indexOf('=') < 1) {
        toast(`environment line "${line}" is not NAME=VALUE`, 'error');
        return;
      }
      query.append('env', line);
    }
    const bytes = new Uint8Array(await file.files[0].arrayBuffer());
    toast(`Uploading and compiling ${file.files[0].name}…`);
    const uploaded = await attempt(() => api.put(`/v1/functions/${seg(name)}?${query}`, bytes));
    if (uploaded) {
      toast(`${name} now runs version ${uploaded.active_version}`);
      file.value = '';
      env.value = '';
      onUploaded();
    }
  } },
  h('h2', {}, 'Upload a new version'),
  field('Component', file, 'a .wasm component; it becomes the active version'),
  h('div', { class: 'fields' }, field('Timeout', timeout, 'per invocation'), field('Memory (MiB)', memory)),
  field('Environment', env, (c.env_names || []).length
    ? `NAME=VALUE, one a line. Values are write-only, so v${f.active_version}'s (${c.env_names.join(', ')}) are not carried over: type them again.`
    : 'NAME=VALUE, one a line'),
  h('button', { type: 'submit' }, 'Upload'));
  return form;
}

function functionPage(name) {
  const head = h('div', { class: 'page-head' }, h('h1', {}, h('a', { href: '#/functions', class: 'crumb' }, 'Functions'), ' / ', name));
  const statsSlot = h('div');
  const versionsSlot = h('div', { class: 'card' });
  const configSlot = h('div', { class: 'card' });
  const triggerSlot = h('div', { class: 'card' });
  const uploadSlot = h('div');
  const logSlot = h('div', { class: 'card log' });
  clear(main, head, statsSlot, h('div', { class: 'columns' }, h('div', { class: 'col-main' }, logSlot), h('div', { class: 'side' }, configSlot, versionsSlot, triggerSlot, uploadSlot)));
  let stream = null;

  const loadStats = async () => {
    const stats = await invocationStats(name);
    if (!statsSlot.matches(':hover')) clear(statsSlot, statsView(stats));
  };

  const loadFunction = async () => {
    const f = await attempt(() => api.get(`/v1/functions/${seg(name)}`));
    if (!f) return;
    clear(configSlot, configView(f));
    if (can.deploy && !uploadSlot.contains(document.activeElement)) clear(uploadSlot, uploadForm(name, f, loadFunction));
    const versions = [...f.versions].sort((a, b) => b.version - a.version);
    clear(versionsSlot, h('h2', {}, 'Versions'), h('table', { class: 'table', 'data-test': 'versions' },
      h('thead', {}, h('tr', {}, ['Version', 'Created', 'Size', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, versions.map((v) => h('tr', { class: v.version === f.active_version ? 'active' : '' },
        h('td', { class: 'nowrap', title: `sha256 ${v.sha256}` }, `v${v.version}`, v.version === f.active_version ? h('span', { class: 'badge ok' }, 'active') : null),
        h('td', { class: 'muted' }, time(v.created_at_ms, false)),
        h('td', { class: 'num nowrap', title: `${count(v.size)} bytes` }, bytes(v.size)),
        h('td', { class: 'row-buttons' }, can.deploy && v.version !== f.active_version ? h('button', { type: 'button', class: 'small', 'aria-label': `Roll back to v${v.version}`, onclick: async () => {
          if (!await confirmDialog(`Make version ${v.version} of ${name} the active one?`, 'Roll back')) return;
          const r = await attempt(() => api.post(`/v1/functions/${seg(name)}/rollback`, { version: v.version }));
          if (r) {
            toast(`${name} now runs version ${r.active_version}`);
            loadFunction();
          }
        } }, 'Roll back') : null))))));
    renderTrigger(f.trigger);
  };

  const renderTrigger = async (t) => {
    if (!t && !can.deploy) {
      clear(triggerSlot, h('h2', {}, 'Trigger'), h('p', { class: 'muted' }, 'Not bound to a queue.'));
      return;
    }
    const queues = can.read ? (await api.get('/v1/queues').catch(() => ({ queues: [] }))).queues : [];
    const disabled = !can.deploy;
    const queue = h('select', { name: 'queue', disabled }, queues.map((q) => h('option', { value: q.name, selected: t && q.name === t.queue }, q.name)));
    const batch = h('input', { name: 'batch_size', type: 'number', min: 1, max: 1000, value: t ? t.batch_size : 10, disabled });
    const wait = h('input', { name: 'max_wait_ms', type: 'number', min: 0, max: 300000, value: t ? t.max_wait_ms : 0, disabled });
    const conc = h('input', { name: 'max_concurrency', type: 'number', min: 1, max: 1000, value: t ? t.max_concurrency : 4, disabled });
    const put = async (paused) => {
      const body = { queue: queue.value, batch_size: Number(batch.value), max_wait_ms: Number(wait.value), max_concurrency: Number(conc.value), paused };
      const status = await attempt(() => api.put(`/v1/functions/${seg(name)}/trigger`, body));
      if (status) {
        toast(`Trigger ${status.state}`);
        loadFunction();
      }
    };
    clear(triggerSlot,
      h('div', { class: 'section-head' }, h('h2', {}, 'Trigger'), t ? h('span', { class: `badge ${t.state}`, 'data-test': 'trigger-state' }, t.state) : h('span', { class: 'muted' }, 'none')),
      t && t.error ? h('p', { class: 'error-text' }, t.error) : null,
      h('form', { class: 'fields', onsubmit: (e) => { e.preventDefault(); put(t ? t.paused : false); } },
        field('Queue', queue), field('Batch size', batch), field('Max wait (ms)', wait), field('Concurrency', conc),
        can.deploy ? h('div', { class: 'actions' },
          h('button', { type: 'submit' }, t ? 'Save trigger' : 'Bind to queue'),
          t ? h('button', { type: 'button', class: 'secondary', onclick: () => put(!t.paused) }, t.paused ? 'Resume' : 'Pause') : null,
          t ? h('button', { type: 'button', class: 'danger', onclick: async () => {
            if (!await confirmDialog(`Stop ${name} consuming ${t.queue}?`, 'Remove trigger')) return;
            if (await attempt(() => api.delete(`/v1/functions/${seg(name)}/trigger`)) !== undefined) loadFunction();
          } }, 'Remove') : null) : null));
  };

  // The log: a page from the list, then live through the event stream.
  const filter = h('select', { name: 'outcome', 'aria-label': 'Outcome filter' },
    h('option', { value: '' }, 'all outcomes'),
    h('option', { value: OUTCOMES.slice(1).join(',') }, 'failures'),
    OUTCOMES.map((o) => h('option', { value: o }, o)));
  const items = h('div', { class: 'invocations', 'data-test': 'invocations' });
  const liveBadge = h('span', { class: 'badge live' }, 'live');
  let oldest = null;
  const more = h('button', { type: 'button', class: 'secondary small', hidden: true, onclick: async () => {
    const query = new URLSearchParams({ limit: '50', before: String(oldest) });
    if (filter.value) query.set('outcome', filter.value);
    const page = await attempt(() => api.get(`/v1/functions/${seg(name)}/invocations?${query}`));
    if (!page) return;
    items.append(...page.invocations.map(invocationItem));
    oldest = page.next_before;
    more.hidden = !oldest;
  } }, 'Older');
  const follow = async () => {
    if (stream) stream.abort();
    const controller = new AbortController();
    stream = controller;
    items.replaceChildren();
    oldest = null;
    const query = new URLSearchParams({ backlog: '50' });
    if (filter.value) query.set('outcome', filter.value);
    let shown = 0;
    liveBadge.classList.remove('off');
    try {
      for await (const event of api.events(`/v1/functions/${seg(name)}/invocations/stream?${query}`, controller.signal)) {
        if (event.event !== 'invocation') continue;
        const record = JSON.parse(event.data);
        items.prepend(invocationItem(record));
        shown += 1;
        if (oldest === null || record.id < oldest) oldest = record.id;
        more.hidden = shown < 50;
        while (items.children.length > 500) items.lastChild.remove();
      }
    } catch (e) {
      if (e.name !== 'AbortError') fail(e);
    }
    if (stream === controller) liveBadge.classList.add('off');
  };
  filter.addEventListener('change', follow);
  clear(logSlot, h('div', { class: 'section-head' }, h('h2', {}, 'Invocations'), liveBadge, filter), items, more);

  loadFunction();
  follow();
  const stopStats = every(REFRESH_MS * 5, loadStats);
  const stop = every(REFRESH_MS * 2, async () => {
    const f = await api.get(`/v1/functions/${seg(name)}`).catch(() => null);
    const badge = triggerSlot.querySelector('[data-test="trigger-state"]');
    if (f && f.trigger && badge && badge.textContent !== f.trigger.state) renderTrigger(f.trigger);
  });
  return () => {
    stop();
    stopStats();
    if (stream) stream.abort();
  };
}

// ---- schedules ----

// The browser's IANA time zone: the form's default.
function localZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

// Every IANA zone the browser knows, suggested as the time zone field is typed in.
function zoneList() {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  return h('datalist', { id: 'time-zones' }, ['UTC', ...zones.filter((z) => z !== 'UTC')].map((z) => h('option', { value: z })));
}

// `KEY=VALUE` lines into attributes; throws naming the first line that is not one.
function attributeLines(text) {
  const attributes = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf('=');
    if (at < 1) throw new Error(`attribute line "${line}" is not KEY=VALUE`);
    attributes[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return attributes;
}

// A tick in the browser's local time and how far off it is; hovering gives it in the
// schedule's own zone, which is the one its cron expression is read in.
function tickCell(ms, zone) {
  const date = new Date(ms);
  const local = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' }).formatToParts(date).find((p) => p.type === 'timeZoneName');
  let there = null;
  try {
    there = `${zone}: ${date.toLocaleString(undefined, { timeZone: zone, dateStyle: 'medium', timeStyle: 'long' })}`;
  } catch {
    // A zone the server knows and this browser does not: the local time stands alone.
  }
  const ahead = ms - Date.now();
  return h('td', { class: 'nowrap', 'data-test': 'next-tick', title: there },
    h('div', {}, time(ms, false), local ? ` ${local.value}` : ''),
    h('div', { class: 'muted' }, ahead > 0 ? `in ${millis(ahead)}` : 'due now'));
}

function scheduledMessage(s) {
  const attributes = Object.entries(s.attributes || {});
  const body = s.body === null ? `${count(atob(s.body_base64).length)} bytes, binary` : (s.body || '(empty body)');
  return [
    h('div', { class: 'mono clip', title: s.body === null ? null : s.body }, body),
    attributes.length ? h('div', { class: 'attrs' }, attributes.map(([k, v]) => h('span', { class: 'attr' }, `${k}=${v}`))) : null,
  ];
}

// The create-or-replace form: `update` refreshes its queue choices as queues come and go,
// `edit` loads a schedule into it (a name that exists is replaced).
function scheduleForm(onSaved) {
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_\\-]{1,80}', placeholder: 'nightly-report' });
  const cron = h('input', { name: 'cron', required: true, class: 'mono', spellcheck: 'false', placeholder: '0 2 * * *' });
  const timezone = h('input', { name: 'timezone', required: true, spellcheck: 'false', list: 'time-zones', value: localZone() });
  const queue = h('select', { name: 'queue', required: true });
  const body = h('textarea', { name: 'body', rows: 3, placeholder: '{"report": "daily"}' });
  const attrs = h('textarea', { name: 'attributes', rows: 2, placeholder: 'kind=report' });
  const wide = (label) => {
    label.classList.add('wide');
    return label;
  };
  let known = null;
  const form = h('form', { class: 'card', 'data-test': 'put-schedule', onsubmit: async (e) => {
    e.preventDefault();
    let attributes;
    try {
      attributes = attributeLines(attrs.value);
    } catch (err) {
      toast(err.message, 'error');
      return;
    }
    const request = { cron: cron.value.trim(), timezone: timezone.value.trim(), queue: queue.value, body: body.value, attributes };
    const saved = await attempt(() => api.put(`/v1/schedules/${seg(name.value.trim())}`, request));
    if (saved) {
      toast(`Saved schedule ${saved.name}: next tick ${time(saved.next_tick_ms, false)}`);
      for (const input of [name, cron, body, attrs]) input.value = '';
      onSaved();
    }
  } },
  h('h2', {}, 'Create or replace a schedule'),
  h('div', { class: 'fields' },
    field('Name', name, 'an existing name is replaced'),
    field('Cron', cron, '5 fields, or 6 with seconds first'),
    field('Time zone', timezone, 'IANA name, e.g. Europe/Berlin'),
    field('Queue', queue),
    wide(field('Body', body)),
    wide(field('Attributes', attrs, 'KEY=VALUE, one a line'))),
  zoneList(),
  h('button', { type: 'submit' }, 'Save schedule'));
  const update = (queues) => {
    const names = queues.map((q) => q.name).join('\n');
    if (names === known) return;
    known = names;
    const chosen = queue.value;
    clear(queue,
      queues.length ? null : h('option', { value: '' }, 'no queues: create one first'),
      queues.map((q) => h('option', { value: q.name, selected: q.name === chosen }, q.name)));
  };
  const edit = (s) => {
    name.value = s.name;
    cron.value = s.cron;
    timezone.value = s.timezone;
    queue.value = s.queue;
    body.value = s.body || '';
    attrs.value = Object.entries(s.attributes || {}).map(([k, v]) => `${k}=${v}`).join('\n');
    name.focus();
  };
  return { form, update, edit };
}

function schedulesPage() {
  const list = h('div', { class: 'card' });
  const put = can.admin ? scheduleForm(() => refresh()) : null;
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Schedules'), h('span', { class: 'muted' }, 'each tick enqueues one message; times are local')),
    put ? h('div', { class: 'columns' }, h('div', { class: 'col-main' }, list), h('div', { class: 'side' }, put.form)) : list);
  const remove = async (name) => {
    if (!await confirmDialog(`Delete schedule ${name}? The messages it already enqueued stay in their queue.`, 'Delete')) return;
    if (await attempt(() => api.delete(`/v1/schedules/${seg(name)}`)) !== undefined) {
      toast(`Deleted schedule ${name}`);
      refresh();
    }
  };
  const refresh = async () => {
    const [answer, all] = await Promise.all([
      attempt(() => api.get('/v1/schedules')),
      put ? api.get('/v1/queues').catch(() => ({ queues: [] })) : null,
    ]);
    if (!answer) return;
    if (put) put.update(all.queues);
    if (!answer.schedules.length) {
      clear(list, h('p', { class: 'empty' }, 'No schedules yet.', put ? ' Create one with the form.' : ''));
      return;
    }
    clear(list, h('table', { class: 'table', 'data-test': 'schedules' },
      h('thead', {}, h('tr', {}, ['Schedule', 'Cron', 'Time zone', 'Queue', 'Next tick', 'Message', put ? '' : null].map((t) => (t === null ? null : h('th', {}, t))))),
      h('tbody', {}, answer.schedules.map((s) => h('tr', { 'data-schedule': s.name },
        h('td', { class: 'nowrap' }, s.name),
        h('td', { class: 'mono nowrap' }, s.cron),
        h('td', {}, s.timezone),
        h('td', {}, h('a', { href: `#/queues/${seg(s.queue)}` }, s.queue)),
        tickCell(s.next_tick_ms, s.timezone),
        h('td', {}, scheduledMessage(s)),
        put ? h('td', { class: 'row-buttons' },
          s.body === null ? null : h('button', { type: 'button', class: 'small secondary', 'aria-label': `Edit ${s.name}`, onclick: () => put.edit(s) }, 'Edit'),
          h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete ${s.name}`, onclick: () => remove(s.name) }, 'Delete')) : null)))));
  };
  return every(REFRESH_MS, refresh);
}

// ---- topics ----

// The create-topic form (admin).
function topicForm(onCreated) {
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_\\-]{1,80}', placeholder: 'events' });
  const hours = h('input', { name: 'retention_hours', type: 'number', min: 1, max: 336, value: 24 });
  return h('form', { class: 'inline-form', 'data-test': 'create-topic', onsubmit: async (e) => {
    e.preventDefault();
    const created = await attempt(() => api.post('/v1/topics', { name: name.value.trim(), retention_ms: Number(hours.value) * 3_600_000 }));
    if (created) {
      toast(`Created topic ${created.name}`);
      name.value = '';
      onCreated();
    }
  } }, field('New topic', name), field('Keep (hours)', hours), h('button', { type: 'submit' }, 'Create topic'));
}

// Subscribe a queue to a topic (admin): filter as JSON, start latest or earliest.
function subscribeForm(onSaved) {
  const topic = h('select', { name: 'topic', required: true });
  const queue = h('select', { name: 'queue', required: true });
  const filter = h('textarea', { name: 'filter', rows: 2, class: 'mono', spellcheck: 'false', placeholder: '{"kind": "order", "region": {"prefix": "eu-"}}' });
  const from = h('select', { name: 'from' }, h('option', { value: 'latest' }, 'new messages'), h('option', { value: 'earliest' }, 'everything kept (replay)'));
  let known = null;
  const form = h('form', { class: 'card', 'data-test': 'subscribe', onsubmit: async (e) => {
    e.preventDefault();
    let parsed = {};
    if (filter.value.trim()) {
      try {
        parsed = JSON.parse(filter.value);
      } catch (err) {
        toast(`the filter is not JSON: ${err.message}`, 'error');
        return;
      }
    }
    const saved = await attempt(() => api.put(`/v1/topics/${seg(topic.value)}/subscriptions/${seg(queue.value)}`, { filter: parsed, from: from.value }));
    if (saved) {
      toast(`${saved.queue} subscribes to ${saved.topic}`);
      filter.value = '';
      onSaved();
    }
  } },
  h('h2', {}, 'Subscribe a queue'),
  h('div', { class: 'fields' }, field('Topic', topic), field('Queue', queue), field('Starting with', from), field('Filter', filter, 'attribute conditions, all must hold; empty: every message')),
  h('button', { type: 'submit' }, 'Subscribe'));
  const update = (topics, queues) => {
    const names = `${topics.map((t) => t.name).join(',')}|${queues.map((q) => q.name).join(',')}`;
    if (names === known) return;
    known = names;
    const [t, q] = [topic.value, queue.value];
    clear(topic, topics.map((x) => h('option', { value: x.name, selected: x.name === t }, x.name)));
    clear(queue, queues.map((x) => h('option', { value: x.name, selected: x.name === q }, x.name)));
  };
  return { form, update };
}

// Publish one message to a topic (produce).
function publishForm(topic, onSent) {
  const body = h('textarea', { name: 'body', rows: 2, placeholder: '{"order": 1}' });
  const attrs = h('input', { name: 'attributes', placeholder: 'kind=order, region=eu-west' });
  return h('form', { class: 'publish', 'data-test': `publish-${topic}`, onsubmit: async (e) => {
    e.preventDefault();
    const attributes = {};
    for (const pair of attrs.value.split(',').map((p) => p.trim()).filter(Boolean)) {
      const at = pair.indexOf('=');
      if (at < 1) {
        toast(`attribute "${pair}" is not KEY=VALUE`, 'error');
        return;
      }
      attributes[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
    const sent = await attempt(() => api.post(`/v1/topics/${seg(topic)}/messages/batch`, { messages: [{ body: body.value, attributes }] }));
    if (sent) {
      const p = sent.published[0];
      toast(`Published #${p.seq} into ${plural(p.copies, 'queue')}`);
      body.value = '';
      onSent();
    }
  } }, field('Body', body), field('Attributes', attrs, 'KEY=VALUE, comma-separated'), h('button', { type: 'submit', class: 'small' }, 'Publish'));
}

function topicsPage() {
  const list = h('div');
  const create = can.admin ? topicForm(() => refresh()) : null;
  const subscribe = can.admin ? subscribeForm(() => refresh()) : null;
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Topics'), h('span', { class: 'muted' }, 'each message is copied into every subscribed queue whose filter it passes')),
    create,
    subscribe ? h('div', { class: 'columns' }, h('div', { class: 'col-main' }, list), h('div', { class: 'side' }, subscribe.form)) : list);
  const unsubscribe = async (topic, queue) => {
    if (!await confirmDialog(`Stop copying ${topic} into ${queue}? What ${queue} holds stays.`, 'Unsubscribe')) return;
    if (await attempt(() => api.delete(`/v1/topics/${seg(topic)}/subscriptions/${seg(queue)}`)) !== undefined) {
      toast(`${queue} no longer subscribes to ${topic}`);
      refresh();
    }
  };
  const refresh = async () => {
    const [answer, all] = await Promise.all([
      attempt(() => api.get('/v1/topics')),
      subscribe ? api.get('/v1/queues').catch(() => ({ queues: [] })) : null,
    ]);
    if (!answer) return;
    if (subscribe) subscribe.update(answer.topics, all.queues);
    if (!answer.topics.length) {
      clear(list, h('p', { class: 'card empty' }, 'No topics yet.'));
      return;
    }
    // Keep what is being typed into a publish form across refreshes (a focused button, say
    // the one just clicked, does not count).
    const typing = document.activeElement;
    if (list.contains(typing) && typing.matches('input, textarea')) return;
    clear(list, answer.topics.map((t) => h('section', { class: 'card', 'data-topic': t.name },
      h('div', { class: 'card-head' },
        h('span', { class: 'queue-name' }, t.name),
        h('span', { class: 'muted', 'data-test': 'published' }, `${count(t.published)} published, kept ${millis(t.retention_ms)}`)),
      t.subscriptions.length ? h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, ['Queue', 'Filter', 'State', can.admin ? '' : null].map((x) => (x === null ? null : h('th', {}, x))))),
        h('tbody', {}, t.subscriptions.map((s) => h('tr', { 'data-subscription': s.queue },
          h('td', {}, h('a', { href: `#/queues/${seg(s.queue)}` }, s.queue)),
          h('td', { class: 'mono' }, Object.keys(s.filter).length ? JSON.stringify(s.filter) : 'every message'),
          h('td', { 'data-test': 'state' }, s.replaying ? `replaying (${count(s.position)} of ${count(t.published)})` : 'live'),
          can.admin ? h('td', { class: 'row-buttons' }, h('button', { type: 'button', class: 'small danger', 'aria-label': `Unsubscribe ${s.queue}`, onclick: () => unsubscribe(t.name, s.queue) }, 'Unsubscribe')) : null))))
        : h('p', { class: 'empty' }, 'No subscriptions.'),
      can.produce(t.name) ? publishForm(t.name, () => refresh()) : null)));
  };
  return every(REFRESH_MS, refresh);
}

// ---- state (key-value buckets) ----

// Every bucket with its expiry; create one (deploy).
function bucketsPage() {
  const list = h('div');
  const name = h('input', { name: 'bucket', required: true, pattern: '[A-Za-z0-9_\\-]{1,80}', placeholder: 'counts' });
  const ttl = h('input', { name: 'ttl', placeholder: 'never (or 1h, 30m)' });
  const create = can.deploy ? h('form', { class: 'inline-form card', 'data-test': 'create-bucket', onsubmit: async (e) => {
    e.preventDefault();
    let ttlMs = null;
    if (ttl.value.trim()) {
      ttlMs = parseDuration(ttl.value);
      if (ttlMs === null) {
        toast(`expiry "${ttl.value}" is not a duration like 30s, 15m or 1h`, 'error');
        return;
      }
    }
    const bucket = name.value.trim();
    if (await attempt(() => api.put(`/v1/kv/${seg(bucket)}`, { ttl_ms: ttlMs })) !== undefined) {
      toast(`Created bucket ${bucket}`);
      name.value = '';
      ttl.value = '';
      refresh();
    }
  } }, field('New bucket', name), field('Keys expire after', ttl), h('button', { type: 'submit' }, 'Create bucket')) : null;
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'State'), h('span', { class: 'muted' }, 'key-value buckets handlers keep state in, committed with their acknowledgements')),
    create, list);
  const refresh = async () => {
    const answer = await attempt(() => api.get('/v1/kv'));
    if (!answer) return;
    clear(list, answer.buckets.length
      ? h('section', { class: 'card' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, ['Bucket', 'Keys expire', 'Created'].map((x) => h('th', {}, x)))),
        h('tbody', {}, answer.buckets.map((b) => h('tr', { 'data-bucket': b.name },
          h('td', {}, h('a', { href: `#/state/${seg(b.name)}` }, b.name)),
          h('td', { title: b.ttl_ms === null ? '' : `${b.ttl_ms} ms` }, b.ttl_ms === null ? 'never' : `after ${millis(b.ttl_ms)}`),
          h('td', { class: 'muted nowrap' }, time(b.created_at_ms, false)))))))
      : h('p', { class: 'card empty' }, 'No buckets yet.'));
  };
  return every(REFRESH_MS, refresh);
}

// One bucket: its keys by prefix, a page at a time; view, edit and delete a key (deploy).
function bucketPage(bucket) {
  const PAGE = 50;
  const prefix = h('input', { name: 'prefix', placeholder: 'count:', 'aria-label': 'Key prefix' });
  const keys = h('div');
  const view = h('div');
  let pages = [null];
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, h('a', { href: '#/state', class: 'crumb' }, 'State'), ' / ', bucket)),
    h('div', { class: 'columns' },
      h('div', { class: 'col-main' },
        h('form', { class: 'inline-form', 'data-test': 'key-prefix', onsubmit: (e) => { e.preventDefault(); pages = [null]; load(); } },
          field('Keys starting with', prefix), h('button', { type: 'submit' }, 'Find')),
        keys),
      h('div', { class: 'side' }, view)));
  const load = async () => {
    const cursor = pages[pages.length - 1];
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (prefix.value) query.set('prefix', prefix.value);
    if (cursor) query.set('cursor', cursor);
    const page = await attempt(() => api.get(`/v1/kv/${seg(bucket)}/keys?${query}`));
    if (!page) return;
    clear(keys, h('section', { class: 'card' },
      page.keys.length
        ? h('ul', { class: 'key-list' }, page.keys.map((key) => h('li', {}, h('button', { type: 'button', class: 'link mono', 'data-key': key, onclick: () => show(key) }, key))))
        : h('p', { class: 'empty' }, prefix.value ? `No keys start with "${prefix.value}".` : 'No keys yet.'),
      h('div', { class: 'row-buttons' },
        pages.length > 1 ? h('button', { type: 'button', class: 'small secondary', onclick: () => { pages.pop(); load(); } }, 'Previous') : null,
        page.cursor ? h('button', { type: 'button', class: 'small secondary', onclick: () => { pages.push(page.cursor); load(); } }, 'Next') : null)));
  };
  const show = async (key) => {
    const value = await attempt(() => api.text(`/v1/kv/${seg(bucket)}/keys/${seg(key)}`));
    if (value === undefined) return;
    if (value === null) {
      clear(view, h('p', { class: 'card empty' }, `${key} has no value (it expired or was deleted).`));
      return;
    }
    const editor = h('textarea', { name: 'value', rows: 6, 'aria-label': `Value of ${key}` }, value.text);
    clear(view, h('section', { class: 'card', 'data-test': 'key-view' },
      h('div', { class: 'card-head' }, h('span', { class: 'mono' }, key), h('span', { class: 'muted' }, `version ${value.version}`)),
      can.deploy
        ? h('form', { onsubmit: async (e) => {
          e.preventDefault();
          if (await attempt(() => api.put(`/v1/kv/${seg(bucket)}/keys/${seg(key)}`, editor.value)) !== undefined) {
            toast(`Saved ${key}`);
            show(key);
          }
        } }, editor, h('div', { class: 'row-buttons' },
          h('button', { type: 'submit' }, 'Save'),
          h('button', { type: 'button', class: 'danger', onclick: async () => {
            if (!await confirmDialog(`Delete ${key} from ${bucket}? Handlers will read no value.`, 'Delete')) return;
            if (await attempt(() => api.delete(`/v1/kv/${seg(bucket)}/keys/${seg(key)}`)) !== undefined) {
              toast(`Deleted ${key}`);
              clear(view);
              load();
            }
          } }, 'Delete')))
        : h('pre', { class: 'body' }, value.text)));
  };
  load();
  return () => {};
}

// ---- tokens ----

const SCOPES = [
  ['admin', 'everything'],
  ['deploy', 'functions and triggers, and read'],
  ['read', 'see queues, messages, functions, logs'],
  ['produce', 'send to any queue or topic'],
  ['consume', 'receive and settle from any queue'],
];

// Create a token (its secret shown here once), list tokens, revoke one (admin).
function tokensPage() {
  const list = h('div', { class: 'card table-wrap' });
  const secretSlot = h('div');
  const name = h('input', { name: 'name', required: true, maxlength: 200, placeholder: 'billing worker' });
  const boxes = SCOPES.map(([scope, what]) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'scope', value: scope }), h('code', {}, scope), h('span', {}, what)));
  const narrow = h('input', { name: 'narrow', spellcheck: 'false', placeholder: 'produce:orders, consume:emails' });
  const sqs = h('input', { type: 'checkbox', name: 'sqs' });
  const form = h('form', { class: 'card', 'data-test': 'create-token', onsubmit: async (e) => {
    e.preventDefault();
    const scopes = [
      ...boxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value),
      ...narrow.value.split(',').map((x) => x.trim()).filter(Boolean),
    ];
    if (!scopes.length) {
      toast('Choose at least one scope: tick one, or name a queue as produce:QUEUE or consume:QUEUE', 'error');
      return;
    }
    const created = await attempt(() => api.post('/v1/tokens', { name: name.value.trim(), scopes, sqs: sqs.checked }));
    if (!created) return;
    name.value = '';
    narrow.value = '';
    for (const b of boxes) b.querySelector('input').checked = false;
    sqs.checked = false;
    const secret = h('input', { readonly: true, class: 'mono', value: created.token, 'data-test': 'secret', 'aria-label': 'The new token' });
    clear(secretSlot, h('div', { class: 'card secret', 'data-test': 'new-token' },
      h('h2', {}, `Token ${created.name || created.id} created`),
      h('p', { class: 'note' }, 'Copy the token now: it is shown this once and cannot be read again. Lost, it can only be revoked and replaced.'),
      secret,
      created.sqs_secret_access_key ? h('p', { class: 'mono' }, `SQS key id ${created.sqs_access_key_id} · secret ${created.sqs_secret_access_key}`) : null,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => { secret.select(); navigator.clipboard?.writeText(created.token).then(() => toast('Copied'), () => toast('Select the token and copy it', 'error')); } }, 'Copy'),
        h('button', { type: 'button', onclick: () => clear(secretSlot) }, 'Done'))));
    secret.select();
    refresh();
  } },
  h('h2', {}, 'Create a token'),
  field('Name', name),
  h('fieldset', { class: 'scopes' }, h('legend', {}, 'Scopes'), boxes),
  field('Narrow scopes', narrow, 'comma-separated: produce:QUEUE, consume:QUEUE'),
  h('label', { class: 'check' }, sqs, 'Also an SQS access key pair'),
  h('button', { type: 'submit' }, 'Create token'));
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Tokens'), h('span', { class: 'muted' }, 'API tokens and what each may do; secrets are never shown again')),
    secretSlot,
    h('div', { class: 'columns' }, h('div', { class: 'col-main' }, list), h('div', { class: 'side' }, form)));
  const revoke = async (t) => {
    const self = t.id === me.id;
    const warning = self ? ' This is the token you are signed in with: the console will sign you out.' : '';
    if (!await confirmDialog(`Revoke token ${t.name || t.id}? Requests with it fail from now on.${warning}`, 'Revoke')) return;
    if (await attempt(() => api.delete(`/v1/tokens/${seg(t.id)}`)) === undefined) return;
    if (self) {
      signOut('You revoked the token you were signed in with.');
      return;
    }
    toast(`Revoked token ${t.name || t.id}`);
    refresh();
  };
  const refresh = async () => {
    const answer = await attempt(() => api.get('/v1/tokens'));
    if (!answer) return;
    const tokens = [...answer.tokens].sort((a, b) => b.created_at_ms - a.created_at_ms);
    clear(list, tokens.length ? h('table', { class: 'table', 'data-test': 'tokens' },
      h('thead', {}, h('tr', {}, ['Name', 'Id', 'Scopes', 'Created', 'SQS key id', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, tokens.map((t) => h('tr', { 'data-token': t.name || t.id },
        h('td', {}, t.name || h('span', { class: 'muted' }, 'unnamed'), t.id === me.id ? h('span', { class: 'badge ok' }, 'you') : null),
        h('td', { class: 'mono' }, t.id),
        h('td', { 'data-test': 'scopes' }, t.scopes.map((x) => h('code', { class: 'attr' }, x))),
        h('td', { class: 'muted nowrap' }, time(t.created_at_ms, false)),
        h('td', { class: 'mono' }, t.sqs_access_key_id || '–'),
        h('td', { class: 'row-buttons' }, h('button', { type: 'button', class: 'small danger', 'aria-label': `Revoke ${t.name || t.id}`, onclick: () => revoke(t) }, 'Revoke'))))))
      : h('p', { class: 'empty' }, 'No tokens yet.'));
  };
  refresh();
  return () => {};
}

// ---- routing ----

function route() {
  if (!api) return;
  leave();
  leave = () => {};
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  for (const link of document.querySelectorAll('[data-nav]')) link.classList.toggle('on', link.dataset.nav === parts[0]);
  let stop;
  if (parts[0] === 'queues' && parts[1]) stop = can.read ? queuePage(parts[1]) : producePage();
  else if (parts[0] === 'dead-letters' && can.read) stop = deadLettersPage();
  else if (parts[0] === 'functions' && parts[1] && can.read) stop = functionPage(parts[1]);
  else if (parts[0] === 'functions' && can.read) stop = functionsPage();
  else if (parts[0] === 'schedules' && can.read) stop = schedulesPage();
  else if (parts[0] === 'topics' && can.read) stop = topicsPage();
  else if (parts[0] === 'state' && parts[1] && can.read) stop = bucketPage(parts[1]);
  else if (parts[0] === 'state' && can.read) stop = bucketsPage();
  else if (parts[0] === 'tokens' && can.admin) stop = tokensPage();
  else stop = queuesPage();
  leave = stop || (() => {});
}

window.addEventListener('hashchange', route);
document.getElementById('sign-out').addEventListener('click', () => signOut());

const saved = sessionStorage.getItem('sluice-token');
if (saved) {
  const client = new Api(saved);
  client.get('/v1/tokens/self').then((identity) => start(client, identity), () => signOut());
} else {
  signInPage();
}
