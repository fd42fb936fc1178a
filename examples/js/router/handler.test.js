import assert from 'node:assert/strict';
import { test } from 'node:test';

import { jsonMessage, message, run } from 'sluice-sdk/testing';
import { Routes, handle } from './handler.js';

const order = (id, kind, options) => jsonMessage({ id, kind, amount: 12.5 }, options);

test('routes by kind with the body unchanged', () => {
  const report = run(handle, [order('o-1', 'book'), order('o-2', 'music', { attributes: { tenant: 'acme' } }), order('o-3', 'film')]);
  assert.deepEqual(report.acked, ['msg-1', 'msg-2', 'msg-3']);
  assert.deepEqual(report.committed.map((m) => m.queue), ['orders-books', 'orders-music', 'orders-other']);
  const music = report.sent[1];
  assert.equal(music.attribute('tenant'), 'acme');
  assert.equal(music.attribute('order-id'), 'o-2');
  assert.equal(music.attribute('kind'), 'music');
  assert.equal(music.json().amount, 12.5);
});

test('dead-letters what is not an order', () => {
  const report = run(handle, [message('{not json'), message('{"id": "o-1", "kind": "book"}'), order('o-2', 'book')]);
  assert.deepEqual(report.acked, ['msg-3']);
  assert.match(report.disposition('msg-1').deadLetter, /^invalid JSON body: /);
  assert.deepEqual(report.disposition('msg-2'), { deadLetter: 'missing field `amount`' });
  assert.equal(report.sent.length, 1);
});

test('a missing queue fails the batch', () => {
  const report = run(handle, [order('o-1', 'book'), order('o-2', 'music')], { queues: ['orders-books'] });
  assert.equal(report.error, 'queue `orders-music` does not exist');
  assert.deepEqual(report.committed, []);
});

test('routes come from the environment with defaults', () => {
  const routes = new Routes((name) => (name === 'ROUTE_MUSIC' ? 'vinyl' : undefined));
  assert.equal(routes.queueFor('book'), 'orders-books');
  assert.equal(routes.queueFor('music'), 'vinyl');
  assert.equal(routes.queueFor('anything'), 'orders-other');
  assert.equal(run(handle, [order('o-1', 'book')], { env: { ROUTE_BOOK: 'paper' } }).sent[0].queue, 'paper');
});
