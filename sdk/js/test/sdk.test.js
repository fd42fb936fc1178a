// The SDK's model, through its native harness: bodies, attributes, outcomes, the outbox (sends,
// publications, replies, priorities and groups), async handlers, errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Outcome,
  Outgoing,
  Publication,
  Reply,
  SluiceError,
  env,
  publish,
  publishJson,
  reply,
  replyJson,
  send,
  sendJson,
} from 'sluice-sdk';
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

test('returning something else fails with a hint', async () => {
  assert.match(run(() => [], [message('a')]).error, /return an Outcome/);
  assert.match((await run(async () => 42, [message('a')])).error, /return an Outcome/);
});

test('an async handler makes run return a Promise of the report', async () => {
  const pending = run(async (batch) => {
    await new Promise((resolve) => setTimeout(resolve, 1));
    send('later', 'x');
    return new Outcome().retry(batch[0], { delayMs: 7 });
  }, [message('a'), message('b')]);
  assert.ok(pending instanceof Promise);
  const report = await pending;
  assert.deepEqual(report.acked, ['msg-2']);
  assert.deepEqual(report.disposition('msg-1'), { retry: 7 });
  assert.equal(report.sent[0].queue, 'later');

  const rejected = await run(async () => {
    send('q', 'x');
    throw new SluiceError('upstream down');
  }, [message('a')]);
  assert.equal(rejected.error, 'upstream down');
  assert.deepEqual(rejected.committed, []);
  assert.throws(() => send('q', 'x'), /outside a handler run/);
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

  const refuse = () => {
    throw Object.assign(new Error('rejected'), { payload: 'queue `nope` does not exist' });
  };
  installOutbox({ send: refuse, publish: refuse, reply: refuse });
  try {
    assert.throws(() => dispatch(() => send('nope', 'x'), wit), (thrown) => thrown === 'queue `nope` does not exist');
    assert.throws(() => dispatch(() => publish('t', 'x'), wit), (thrown) => thrown === 'queue `nope` does not exist');
  } finally {
    delete globalThis[Symbol.for('sluice-sdk.outbox')];
  }
});

test('the component glue passes sends, publications and replies to the host as WIT', () => {
  const calls = [];
  installOutbox({
    send: (outgoing) => calls.push(['send', outgoing]),
    publish: (...args) => calls.push(['publish', ...args]),
    reply: (...args) => calls.push(['reply', ...args]),
  });
  try {
    const wit = [{ id: 'a', queue: 'q', body: new Uint8Array(), attributes: [], attempt: 1, enqueuedAtMs: 0n, priority: 7, group: 'g' }];
    dispatch((batch) => {
      assert.deepEqual([batch[0].priority, batch[0].group], [7, 'g']);
      send('out', 'x', { priority: 9, group: 'g-1', delayMs: 3 });
      publish('topic', 'y', { attributes: [['k', 'v']] });
      reply(batch[0], 'z');
    }, wit);
  } finally {
    delete globalThis[Symbol.for('sluice-sdk.outbox')];
  }
  const encode = (text) => new TextEncoder().encode(text);
  assert.deepEqual(calls, [
    ['send', { queue: 'out', body: encode('x'), attributes: [], delayMs: 3, priority: 9, group: 'g-1' }],
    ['publish', 'topic', encode('y'), [['k', 'v']]],
    ['reply', 'a', encode('z'), []],
  ]);
});

test('the component glue settles an async handler and turns its rejection into an err string', async (t) => {
  const wit = [{ id: 'a', queue: 'q', body: new Uint8Array(), attributes: [], attempt: 1, enqueuedAtMs: 0n }];
  const failures = await dispatch(async (batch) => new Outcome().deadLetter(batch[0], 'HTTP 410'), wit);
  assert.deepEqual(failures, [{ id: 'a', disposition: { tag: 'dead-letter', val: 'HTTP 410' } }]);
  t.mock.method(console, 'error', () => {});
  await assert.rejects(dispatch(async () => { throw new TypeError('bad'); }, wit), (thrown) => thrown === 'TypeError: bad');
  await assert.rejects(dispatch(async () => 'nope', wit), (thrown) => /return an Outcome/.test(thrown));
});

test('messages carry priority and group; sends set them', () => {
  const msg = build(message('x', { priority: 9, group: 'customer-7' }));
  assert.deepEqual([msg.priority, msg.group], [9, 'customer-7']);
  assert.deepEqual([build(message('x')).priority, build(message('x')).group], [4, undefined]);

  const report = run(() => {
    send('q', 'a', { priority: 7, group: 'g-1' });
    sendJson('q', [1], { delayMs: 10 });
    new Outgoing('q').setBody('c').setPriority(0).setGroup('g-2').send();
  }, [message('x')]);
  assert.deepEqual(report.sent.map((m) => [m.priority, m.group]), [[7, 'g-1'], [undefined, undefined], [0, 'g-2']]);
  assert.equal(report.sent[1].delayMs, 10);
  assert.throws(() => new Outgoing('q').setPriority(1.5), RangeError);
});

test('invalid priorities and groups fail as on the host', () => {
  for (const [options, reason] of [
    [{ priority: 10 }, 'invalid message: priority 10 is out of range; give 0 (lowest) to 9 (highest), or leave it out for 4'],
    [{ group: '' }, 'invalid message: a group key must be 1 to 128 bytes, not 0'],
    [{ group: 'é'.repeat(65) }, 'invalid message: a group key must be 1 to 128 bytes, not 130'],
    [{ group: 'a\nb' }, 'invalid message: a group key must not contain control characters'],
  ]) {
    assert.equal(run(() => send('q', 'x', options), [message('x')]).error, reason);
  }
});

test('publications are recorded, checked and committed with the ack', () => {
  const report = run(() => {
    publish('orders', 'a', { attributes: [['kind', 'book']] });
    publishJson('orders', { n: 1 });
    new Publication('audit').attribute('who', 'me').publish();
  }, [message('x')]);
  assert.deepEqual(report.committedPublications.map((p) => [p.topic, p.text()]), [['orders', 'a'], ['orders', '{"n":1}'], ['audit', '']]);
  assert.equal(report.published[0].attribute('kind'), 'book');
  assert.deepEqual(report.published[1].json(), { n: 1 });
  assert.equal(run(() => publish('nope', 'x'), [message('x')], { topics: ['orders'] }).error, 'topic `nope` does not exist');
  const failed = run(() => { publish('orders', 'x'); throw new Error('later'); }, [message('x')]);
  assert.equal(failed.published.length, 1);
  assert.deepEqual(failed.committedPublications, []);
});

test('replies are committed only for acknowledged messages, one per message of the batch', () => {
  const report = run((batch) => {
    reply(batch[0], 'pong');
    replyJson(batch[1], { ok: false });
    Reply.to(batch[2]).setBody('three').attribute('status', 'done').send();
    return new Outcome().retry(batch[1]);
  }, [message('a'), message('b'), message('c')]);
  assert.deepEqual(report.replies.map((r) => r.messageId), ['msg-1', 'msg-2', 'msg-3']);
  assert.deepEqual(report.committedReplies.map((r) => r.messageId), ['msg-1', 'msg-3']);
  assert.deepEqual(report.replyTo('msg-2').json(), { ok: false });
  assert.equal(report.replyTo('msg-3').attribute('status'), 'done');
  assert.equal(report.replyTo('msg-9'), undefined);

  const twice = run((batch) => { reply(batch[0], '1'); reply(batch[0], '2'); }, [message('a')]);
  assert.equal(twice.error, 'message `msg-1` already has a reply in this invocation; a message gets at most one');
  const stranger = run(() => reply('other', 'x'), [message('a')]);
  assert.equal(stranger.error, 'message `other` is not in this batch; reply to a message of the batch being handled');
  assert.throws(() => reply('id', 'x'), /reply outside a handler run/);
  assert.throws(() => publish('t', 'x'), /publish outside a handler run/);
});

test('env reads the harness environment during a run, process.env otherwise', () => {
  let seen;
  run(() => { seen = [env('ROUTE'), env('HOME')]; }, [message('a')], { env: { ROUTE: 'x' } });
  assert.deepEqual(seen, ['x', undefined]);
  assert.equal(env('HOME'), process.env.HOME);
});
