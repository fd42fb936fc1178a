// Building blocks of the console's pages: an element builder (no HTML strings, so nothing a
// message contains is ever parsed as markup), formatting, small SVG charts and body previews.

const SVG = 'http://www.w3.org/2000/svg';

// h('div', {class: 'x', onclick: f}, child, 'text', [more]) -> HTMLElement
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = !!value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function count(n) {
  return n === undefined || n === null ? '–' : Number(n).toLocaleString('en-US');
}

export function millis(ms) {
  if (ms === undefined || ms === null) return '–';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${m % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

export function rate(perSecond) {
  if (perSecond === undefined || perSecond === null) return '–';
  if (perSecond >= 100) return `${Math.round(perSecond).toLocaleString('en-US')}/s`;
  if (perSecond >= 1) return `${perSecond.toFixed(1)}/s`;
  return `${(perSecond * 60).toFixed(1)}/min`;
}

// Local time, to the millisecond unless `precise` is false (a schedule's ticks fall on seconds).
export function time(ms, precise = true) {
  if (!ms) return '–';
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
    (precise ? `.${pad(d.getMilliseconds(), 3)}` : '');
}

// A small line chart of one or more series over the samples' times.
// series: [{name, cls, values: [number|null]}]; times: [ms]
export function chart(title, times, series, format = count) {
  const width = 240;
  const height = 56;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1, ...all);
  const t0 = times.length ? times[0] : 0;
  const t1 = times.length ? times[times.length - 1] : 1;
  const span = Math.max(1, t1 - t0);
  const base = document.createElementNS(SVG, 'line');
  for (const [k, v] of Object.entries({ x1: 0, y1: height - 1, x2: width, y2: height - 1, class: 'axis' })) {
    base.setAttribute(k, v);
  }
  svg.append(base);
  for (const s of series) {
    const points = [];
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const x = times.length > 1 ? ((times[i] - t0) / span) * (width - 2) + 1 : width - 2;
      const y = height - 2 - (v / max) * (height - 6);
      points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    if (points.length === 1) points.unshift(`1,${points[0].split(',')[1]}`);
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', points.join(' '));
    line.setAttribute('class', `line ${s.cls}`);
    svg.append(line);
  }
  const legend = series.map((s) => {
    const last = [...s.values].reverse().find((v) => v !== null && v !== undefined);
    return h('span', { class: `legend ${s.cls}` }, `${s.name} ${last === undefined ? '–' : format(last)}`);
  });
  svg.setAttribute('aria-label', `${title}: ${legend.map((l) => l.textContent).join(', ')}`);
  return h('figure', { class: 'chart-box' },
    h('figcaption', {}, h('span', { class: 'chart-title' }, title), h('span', { class: 'chart-max' }, `max ${format(max)}`)),
    svg,
    h('div', { class: 'legends' }, legend));
}

function bytesOf(message) {
  const raw = atob(message.body_base64 || '');
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

export function hexDump(bytes, limit = 4096) {
  const lines = [];
  const shown = bytes.subarray(0, limit);
  for (let off = 0; off < shown.length; off += 16) {
    const row = shown.subarray(off, off + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > limit) lines.push(`… ${bytes.length - limit} more bytes`);
  return lines.join('\n');
}

// A message body with text / JSON / hex views; JSON is chosen when the body parses as JSON.
export function bodyPreview(message) {
  const bytes = bytesOf(message);
  const text = message.body;
  let json = null;
  if (text !== null && text !== undefined) {
    try {
      json = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      json = null;
    }
  }
  const views = [];
  if (json !== null) views.push(['json', 'JSON', json]);
  if (text !== null && text !== undefined) views.push(['text', 'Text', text]);
  views.push(['hex', 'Hex', hexDump(bytes)]);
  const pre = h('pre', { class: 'body', 'data-test': 'body' });
  const buttons = views.map(([key, label, content]) => h('button', {
    type: 'button',
    class: 'tab',
    'data-view': key,
    onclick: (e) => show(e.currentTarget, content),
  }, label));
  function show(button, content) {
    for (const b of buttons) b.classList.toggle('on', b === button);
    pre.textContent = content;
  }
  show(buttons[0], views[0][2]);
  return h('div', { class: 'preview' },
    h('div', { class: 'tabs' }, buttons, h('span', { class: 'size' }, `${count(bytes.length)} bytes`)),
    pre);
}

let toastTimer = null;
export function toast(message, kind = 'ok') {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.className = `toast ${kind}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 8000 : 3000);
}

// Resolves true when the user confirms `text` in the console's modal dialog.
export function confirmDialog(text, action = 'Confirm') {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = action;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

// A labelled input for forms.
export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('small', {}, hint) : null);
}
