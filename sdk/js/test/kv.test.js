// The native harness's buckets keep the host's rule: a handler's writes are committed only if
// it returns, its reads see its own writes, and it opens only the buckets it lists.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SluiceError, kv } from '../src/index.js';
import { Kv, message, run } from '../src/testing.js';

function count(batch) {
  const counts = kv.open('counts');
  for (const msg of batch) {
    counts.increment(`count:${msg.attribute('customer')}`);
    kv.open('seen').setJson(`seen:${msg.id}`, { at: 1 });
  }
  if (batch.some((msg) => msg.attribute('fail'))) throw new Error('the downstream is down');
}

test('writes commit when the handler returns', () => {
  const state = new Kv({ counts: { 'count:acme': '41' }, seen: {} });
  const report = run(count, [message('a', { attributes: { customer: 'acme' } })], { kv: state });
  assert.ok(report.ok);
  assert.equal(state.getText('counts', 'count:acme'), '42');
  assert.equal(state.getText('seen', 'seen:msg-1'), '{"at":1}');
});

test('a failed batch leaves no writes', () => {
  const state = new Kv(['counts', 'seen']);
  const report = run(
    count,
    [message('a', { attributes: { customer: 'acme' } }), message('b', { attributes: { customer: 'acme', fail: 'yes' } })],
    { kv: state },
  );
  assert.ok(!report.ok);
  assert.equal(state.buckets.get('counts').size, 0);
  assert.equal(state.buckets.get('seen').size, 0);
});

test("reads see the invocation's own writes, then committed state", () => {
  const state = new Kv({ b: { old: '1', other: 'x' } });
  const report = run(
    () => {
      const bucket = kv.open('b');
      assert.equal(bucket.getText('old'), '1');
      bucket.set('new', '2');
      bucket.delete('old');
      assert.equal(bucket.getText('new'), '2');
      assert.ok(!bucket.exists('old'));
      assert.deepEqual(bucket.keys(), ['new', 'other']);
      assert.equal(bucket.increment('n', 5), 5);
      assert.equal(bucket.increment('n'), 6);
    },
    [message('x')],
    { kv: state },
  );
  assert.ok(report.ok, report.error);
  assert.deepEqual([...state.buckets.get('b').keys()].sort(), ['n', 'new', 'other']);
  assert.equal(state.getText('b', 'n'), '6');
});

test('only listed buckets open', () => {
  const report = run(() => kv.open('secret'), [message('x')], { kv: new Kv(['counts']) });
  assert.ok(report.exception instanceof SluiceError);
  assert.match(report.error, /kv_buckets/);
});

test('buckets outside a run say how to test them', () => {
  assert.throws(() => kv.open('counts'), /run\(\) of sluice-sdk\/testing/);
});
