// The counter through the SDK's native harness: counts commit only when the batch does.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Kv, message, run } from 'sluice-sdk/testing';
import { handle } from './handler.js';

test('counts per customer and remembers each message', () => {
  const state = new Kv(['counts', 'seen']);
  const report = run(
    handle,
    ['acme', 'acme', 'zeta'].map((customer, i) => message(`m${i}`, { attributes: { customer } })),
    { kv: state },
  );
  assert.deepEqual(report.acked, ['msg-1', 'msg-2', 'msg-3']);
  assert.equal(state.getText('counts', 'count:acme'), '2');
  assert.equal(state.getText('counts', 'count:zeta'), '1');
  assert.equal(state.getText('seen', 'seen:msg-3'), '1');
});

test('a message without a customer is dead-lettered and the rest counted', () => {
  const state = new Kv(['counts', 'seen']);
  const report = run(handle, [message('a'), message('b', { attributes: { customer: 'acme' } })], { kv: state });
  assert.match(report.disposition('msg-1').deadLetter, /customer/);
  assert.equal(state.getText('counts', 'count:acme'), '1');
});
