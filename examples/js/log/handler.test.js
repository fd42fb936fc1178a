import assert from 'node:assert/strict';
import { test } from 'node:test';

import { build, message, run } from 'sluice-sdk/testing';
import { describe, handle } from './handler.js';

test('describes a message', () => {
  const msg = build(message('hello', { id: 'm-1', queue: 'events', attempt: 2, attributes: [['tenant', 'acme'], ['source', 'web']] }));
  assert.equal(describe(msg), 'message m-1 from events (attempt 2) [tenant=acme, source=web]: hello');
});

test('binary bodies are printed lossily', () => {
  assert.ok(describe(build(message(new Uint8Array([0x61, 0xff])))).endsWith('[]: a\ufffd'));
});

test('acknowledges everything and sends nothing', (t) => {
  const lines = [];
  t.mock.method(console, 'log', (line) => lines.push(line));
  const report = run(handle, [message('a'), message('b')]);
  assert.deepEqual(report.acked, ['msg-1', 'msg-2']);
  assert.deepEqual(report.sent, []);
  assert.equal(lines.length, 2);
});

test('a `fail` attribute throws, failing the batch with its text', (t) => {
  t.mock.method(console, 'log', () => {});
  const report = run(handle, [message('a'), message('b', { attributes: { fail: 'tenant acme is suspended' } })]);
  assert.equal(report.error, 'Error: tenant acme is suspended');
  assert.deepEqual(report.acked, []);
});
