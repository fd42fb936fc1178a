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
  if (s < 60) return `${s < 10 && !Number.isInteger(s) ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  const pair = (big, bigUnit, small, smallUnit) => (small ? `${big}${bigUnit} ${small}${smallUnit}` : `${big}${bigUnit}`);
  if (m < 60) return pair(m, 'm', Math.round(s % 60), 's');
  const hours = Math.floor(m / 60);
  if (hours < 48) return pair(hours, 'h', m % 60, 'm');
  return pair(Math.floor(hours / 24), 'd', hours % 24, 'h');
}

// Rates are always per second, so two figures on one page compare at a glance.
export function rate(perSecond) {
  if (perSecond === undefined || perSecond === null) return '–';
  if (perSecond === 0) return '0/s';
  if (perSecond >= 100) return `${Math.round(perSecond).toLocaleString('en-US')}/s`;
  if (perSecond >= 1) return `${perSecond.toFixed(1)}/s`;
  return `${Number(perSecond.toPrecision(2))}/s`;
}

const SIZE_UNITS = [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]];

// Bytes in the largest binary unit that fits: 12582912 -> "12 MiB", 1536 -> "1.5 KiB".
export function bytes(n) {
  if (n === undefined || n === null) return '–';
  for (const [unit, size] of SIZE_UNITS) {
    if (n >= size) {
      const v = n / size;
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
    }
  }
  return `${n} B`;
}

// Lossless forms for values typed back in (settings): every nonzero part, "1m 5s 432ms",
// and the largest unit that divides a size evenly, "1500 B" rather than "1.5 KiB".
export function exactMillis(ms) {
  if (ms === undefined || ms === null) return '';
  if (ms === 0) return '0s';
  const parts = [];
  let rest = ms;
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]]) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join(' ');
}

export function exactBytes(n) {
  if (n === undefined || n === null) return '';
  const unit = SIZE_UNITS.find(([, size]) => n >= size && n % size === 0);
  return unit ? `${n / unit[1]} ${unit[0]}` : `${n} B`;
}

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

// "1h 30m", "250ms", "4d", or a bare number of milliseconds -> milliseconds; null if unreadable.
export function parseDuration(text) {
  const t = text.trim().toLowerCase();
  if (/^\d+$/.test(t)) return Number(t);
  const parts = [...t.matchAll(/(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)/g)];
  if (!parts.length || parts.map((p) => p[0]).join('').replace(/\s/g, '') !== t.replace(/\s/g, '')) return null;
  return Math.round(parts.reduce((sum, [, n, unit]) => sum + Number(n) * DURATION_UNITS[unit], 0));
}

// "12 MiB", "512 KiB", "100 B" or a bare number of bytes -> bytes; null if unreadable.
export function parseBytes(text) {
  const found = /^(\d+(?:\.\d+)?)\s*(b|bytes?|kib|kb|mib|mb|gib|gb)?$/i.exec(text.trim());
  if (!found) return null;
  const unit = (found[2] || 'b').toLowerCase();
  const scale = unit.startsWith('g') ? 1024 ** 3 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('k') ? 1024 : 1;
  return Math.round(Number(found[1]) * scale);
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

// Hours, minutes and seconds of a local time: a chart's axis labels.
function clock(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// A small line chart of one or more series over the samples' times, with the times below it.
// Hovering shows each series' value at the nearest sample in the legend; away from it, the
// legend reads the last sample, labelled `latest`.
// series: [{name, cls, values: [number|null]}]; times: [ms]
export function chart(title, times, series, format = count, latest = 'now') {
  const width = 240;
  const height = 56;
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', class: 'chart', role: 'img' });
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1, ...all);
  const t0 = times.length ? times[0] : 0;
  const t1 = times.length ? times[times.length - 1] : 1;
  const span = Math.max(1, t1 - t0);
  const xOf = (i) => (times.length > 1 ? ((times[i] - t0) / span) * (width - 2) + 1 : width - 2);
  svg.append(svgEl('line', { x1: 0, y1: height - 1, x2: width, y2: height - 1, class: 'axis' }));
  for (const s of series) {
    const points = [];
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const y = height - 2 - (v / max) * (height - 6);
      points.push(`${xOf(i).toFixed(1)},${y.toFixed(1)}`);
    });
    if (points.length === 1) points.unshift(`1,${points[0].split(',')[1]}`);
    svg.append(svgEl('polyline', { points: points.join(' '), class: `line ${s.cls}` }));
  }
  const cursor = svgEl('line', { x1: 0, y1: 0, x2: 0, y2: height, class: 'cursor', visibility: 'hidden' });
  svg.append(cursor);
  const legends = series.map((s) => h('span', { class: `legend ${s.cls}` }));
  const at = h('span', { class: 'chart-at', 'data-test': 'chart-at' });
  // The legend reads the values at sample `i`, or the latest of each series when `i` is null.
  const show = (i) => {
    series.forEach((s, k) => {
      const v = i === null ? [...s.values].reverse().find((x) => x !== null && x !== undefined) : s.values[i];
      legends[k].textContent = `${s.name} ${v === undefined || v === null ? '–' : format(v)}`;
    });
    at.textContent = i === null ? (times.length ? latest : '') : clock(times[i]);
    cursor.setAttribute('visibility', i === null ? 'hidden' : 'visible');
    if (i !== null) {
      cursor.setAttribute('x1', xOf(i));
      cursor.setAttribute('x2', xOf(i));
    }
  };
  svg.addEventListener('pointermove', (e) => {
    if (!times.length) return;
    const box = svg.getBoundingClientRect();
    const t = t0 + ((e.clientX - box.left) / Math.max(1, box.width)) * span;
    let best = 0;
    times.forEach((x, i) => { if (Math.abs(x - t) < Math.abs(times[best] - t)) best = i; });
    show(best);
  });
  svg.addEventListener('pointerleave', () => show(null));
  show(null);
  svg.setAttribute('aria-label', `${title}: ${legends.map((l) => l.textContent).join(', ')}`);
  const axis = times.length
    ? h('div', { class: 'chart-axis', 'data-test': 'chart-axis' },
      h('span', {}, clock(t0)), h('span', {}, clock(t0 + span / 2)), h('span', {}, clock(t1)))
    : null;
  return h('figure', { class: 'chart-box' },
    h('figcaption', {}, h('span', { class: 'chart-title' }, title), h('span', { class: 'chart-max' }, `max ${format(max)}`)),
    svg,
    axis,
    h('div', { class: 'legends' }, at, legends));
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
