// The SDK's model, through its native harness: bodies, attributes, outcomes, sends, errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Outcome, Outgoing, SluiceError, env, send, sendJson } from 'sluice-sdk';
import { build, jsonMessage, message, run } from 'sluice-sdk/testing';
import { dispatch, installOutbox } from 'sluice-sdk/component';

function echo(batch) {
  for (const msg of batch) {
    new Outgoing('echo').setBody(msg.body).attribute('from', msg.id).delay(5).send();
  }
}

test('bodies as bytes, text and JSON; attributes; attempt', () => {
  const msg = build(message('{"sku": "A-1"}', { id: 'm-1', attributes: { tenant: 'acme' }, attempt: 3 }));
  assert.deepEqual(msg.body, new TextEncoder().encode('{"sku": "A-1"}'));
  assert.equal(msg.text(), '{"sku": "A-1"}');
  assert.deepEqual(msg.json(), { sku: 'A-1' });
  assert.equal(msg.attribute('tenant'), 'acme');
  assert.equal(msg.attribute('region'), undefined);
  assert.deepEqual([msg.id, msg.queue, msg.attempt], ['m-1', 'test', 3]);
});

test('bad bodies throw errors that say why', () => {
  assert.throws(() => build(message(new Uint8Array([0xff]))).text(), /not valid UTF-8/);
  assert.throws(() => build(message('nope')).json(), (e) => e instanceof SluiceError && e.message.startsWith('invalid JSON body: '));
});

test('returning nothing acknowledges everything', () => {
  const report = run(() => {}, [message('a'), message('b')]);
  assert.ok(report.ok);
  assert.deepEqual(report.acked, ['msg-1', 'msg-2']);
  assert.deepEqual(report.sent, []);
});

test('per-message retry with delay and dead-letter; the last mark wins', () => {
  const report = run(
    (batch) => {
      const outcome = new Outcome();
      outcome.retry(batch[0], { delayMs: 250 });
      outcome.retry(batch[1]).deadLetter(batch[1], new Error('bad'));
      return outcome;
    },
    [message('a'), message('b'), message('c')],
  );
  assert.deepEqual(report.acked, ['msg-3']);
  assert.deepEqual(report.disposition('msg-1'), { retry: 250 });
  assert.deepEqual(report.disposition('msg-2'), { deadLetter: 'bad' });
  assert.equal(report.disposition('msg-3'), undefined);
});

test('sends are recorded with attributes and delay', () => {
  const report = run(echo, [message('a'), message('b', { id: 'second' })]);
  assert.deepEqual(report.committed.map((m) => m.text()), ['a', 'b']);
  assert.equal(report.sent[1].attribute('from'), 'second');
  assert.equal(report.sent[0].delayMs, 5);
});

test('send and sendJson', () => {
  const report = run(() => {
    send('text', 'héllo');
    sendJson('json', { n: 1 }, { attributes: [['k', 'v']] });
  }, [jsonMessage({})]);
  assert.equal(report.sent[0].text(), 'héllo');
  assert.deepEqual(report.sent[1].json(), { n: 1 });
  assert.equal(report.sent[1].attribute('k'), 'v');
});

test('a thrown error fails the batch and discards sends', () => {
  const report = run(() => {
    send('q', 'x');
    throw new SluiceError('database down');
  }, [message('a')]);
  assert.equal(report.ok, false);
  assert.equal(report.error, 'database down');
  assert.deepEqual(report.acked, []);
  assert.equal(report.sent.length, 1);
  assert.deepEqual(report.committed, []);
});

test('other errors and thrown values are named in the reason', () => {
  assert.equal(run(() => { throw new TypeError('x is undefined'); }, [message('a')]).error, 'TypeError: x is undefined');
  assert.equal(run(() => { throw 'plain'; }, [message('a')]).error, 'plain');
});

test('returning something else, or a Promise, fails with a hint', () => {
  assert.match(run(() => [], [message('a')]).error, /return an Outcome/);
  assert.match(run(async () => {}, [message('a')]).error, /synchronous/);
});

test('unknown queues fail and runs are isolated', () => {
  assert.equal(run(echo, [message('a')], { queues: ['other'] }).error, 'queue `echo` does not exist');
  assert.ok(run(echo, [message('a')]).ok);
  assert.throws(() => send('q', 'x'), /outside a handler run/);
});

test('delays are checked', () => {
  assert.throws(() => new Outgoing('q').delay(-1), RangeError);
  assert.throws(() => new Outcome().retry('id', { delayMs: 2 ** 32 }), RangeError);
});

test('the component glue converts outcomes to WIT and thrown errors to err strings', (t) => {
  const wit = [{ id: 'a', queue: 'q', body: new Uint8Array([104, 105]), attributes: [['k', 'v']], attempt: 2, enqueuedAtMs: 5n }];
  const failures = dispatch((batch) => {
    assert.equal(batch[0].text(), 'hi');
    assert.equal(batch[0].enqueuedAtMs, 5);
    return new Outcome().retry(batch[0]);
  }, wit);
  assert.deepEqual(failures, [{ id: 'a', disposition: { tag: 'retry', val: undefined } }]);
  assert.deepEqual(dispatch(() => new Outcome().deadLetter('a', 'no'), wit), [
    { id: 'a', disposition: { tag: 'dead-letter', val: 'no' } },
  ]);

  const printed = [];
  t.mock.method(console, 'error', (text) => printed.push(text));
  assert.throws(() => dispatch(() => { throw new Error('boom'); }, wit), (thrown) => thrown === 'Error: boom');
  assert.match(printed[0], /^Error: boom\n.*sdk\.test\.js/s);

  installOutbox(() => {
    throw Object.assign(new Error('rejected'), { payload: 'queue `nope` does not exist' });
  });
  try {
    assert.throws(() => dispatch(() => send('nope', 'x'), wit), (thrown) => thrown === 'queue `nope` does not exist');
  } finally {
    delete globalThis[Symbol.for('sluice-sdk.outbox')];
  }
});

test('env reads the harness environment during a run, process.env otherwise', () => {
  let seen;
  run(() => { seen = [env('ROUTE'), env('HOME')]; }, [message('a')], { env: { ROUTE: 'x' } });
  assert.deepEqual(seen, ['x', undefined]);
  assert.equal(env('HOME'), process.env.HOME);
});
