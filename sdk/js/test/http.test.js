// `fetch` through the native harness: requests recorded as sent, stubbed responses and failures
// (as the host's fetch reports them), and a clear failure for what is not stubbed.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Outcome } from 'sluice-sdk';
import { Http, UnstubbedRequest, message, run } from 'sluice-sdk/testing';

test('requests are recorded as sent', async () => {
  const http = new Http().stubPrefix('https://api.example.com/');
  const report = await run(async () => {
    await fetch('https://api.example.com/items?page=2', { headers: { Accept: 'application/json' } });
    await fetch('https://api.example.com/items', { method: 'POST', body: 'héllo', headers: [['X-Tag', 'a'], ['x-tag', 'b']] });
    await fetch(new Request('https://api.example.com/items/1', { method: 'DELETE' }));
  }, [message('x')], { http });
  const [get, post, del] = report.requests;
  assert.deepEqual([get.method, get.url, get.body.length], ['GET', 'https://api.example.com/items?page=2', 0]);
  assert.equal(get.header('accept'), 'application/json');
  assert.equal(post.text(), 'héllo');
  assert.equal(post.header('X-TAG'), 'a, b');
  assert.equal(post.header('missing'), undefined);
  assert.equal(del.method, 'DELETE');
});

test('responses come from the exact stub, else the longest prefix', async () => {
  const http = new Http()
    .stubPrefix('https://api.example.com/', { status: 404 })
    .stubPrefix('https://api.example.com/orders/', { status: 202, body: 'accepted', headers: { 'Retry-After': '3' } })
    .stub('https://api.example.com/orders/1', { json: { id: 1 } })
    .stub('https://api.example.com/empty', { status: 204 });
  let seen;
  await run(async () => {
    const exact = await fetch('https://api.example.com/orders/1');
    const prefix = await fetch('https://api.example.com/orders/2');
    const fallback = await fetch('https://api.example.com/users');
    const empty = await fetch('https://api.example.com/empty', { method: 'POST', body: 'x' });
    seen = {
      exact: [exact.status, exact.ok, await exact.json(), exact.headers.get('content-type')],
      prefix: [prefix.status, await prefix.text(), prefix.headers.get('retry-after'), prefix.url],
      fallback: [fallback.status, fallback.ok],
      empty: [empty.status, await empty.text()],
    };
  }, [message('x')], { http });
  assert.deepEqual(seen, {
    exact: [200, true, { id: 1 }, 'application/json'],
    prefix: [202, 'accepted', '3', 'https://api.example.com/orders/2'],
    fallback: [404, false],
    empty: [204, ''],
  });
});

test('stubbed failures, denials included, reject as the host fetch does', async () => {
  const http = new Http()
    .stub('https://down.example.com/', { error: 'connection-refused' })
    .stub('https://slow.example.com/', { error: 'HTTP-response-timeout' })
    .stub('https://evil.example.com/', { error: 'HTTP-request-denied' });
  const caught = [];
  const report = await run(async (batch) => {
    const outcome = new Outcome();
    for (const [msg, url] of batch.map((m) => [m, m.text()])) {
      try {
        await fetch(url, { method: 'POST', body: 'x' });
      } catch (error) {
        caught.push([error.name, error.message]);
        outcome.retry(msg);
      }
    }
    return outcome;
  }, [message('https://down.example.com/'), message('https://slow.example.com/'), message('https://evil.example.com/')], { http });
  assert.deepEqual(caught, [
    ['TypeError', 'NetworkError when attempting to fetch resource'],
    ['TypeError', 'NetworkError when attempting to fetch resource'],
    ['TypeError', 'NetworkError when attempting to fetch resource'],
  ]);
  assert.deepEqual(report.acked, []);
  assert.equal(report.requests.length, 3);
  assert.equal(report.requests[0].text(), 'x');
});

test('an uncaught fetch failure fails the batch with its message', async () => {
  const http = new Http().stubPrefix('https://x.example.com', { error: 'connection-refused' });
  const report = await run(async () => { await fetch('https://x.example.com/'); }, [message('x')], { http });
  assert.equal(report.error, 'TypeError: NetworkError when attempting to fetch resource');
});

test('an unstubbed URL fails the test even when the handler catches it', async () => {
  const swallow = async () => {
    try {
      await fetch('https://nowhere.example.com/a');
    } catch {
      // what a careless handler does
    }
  };
  await assert.rejects(
    run(swallow, [message('x')], { http: new Http().stubPrefix('https://api.example.com/') }),
    (error) => error instanceof UnstubbedRequest &&
      error.message.startsWith('GET https://nowhere.example.com/a is not stubbed (stubbed: https://api.example.com/*)'),
  );
  // A synchronous handler that does not await its fetch is caught too.
  assert.throws(() => run(() => { fetch('https://nowhere.example.com/b').catch(() => {}); }, [message('x')]), /no URL is stubbed/);
});

test('stubs are checked, and fetch is restored after a run', async () => {
  assert.throws(() => new Http().stub('https://x/', { error: 'refused' }), /unknown error "refused"/);
  assert.throws(() => new Http().stub('https://x/', { status: 700 }), RangeError);
  const original = globalThis.fetch;
  await run(async () => {
    assert.notEqual(globalThis.fetch, original);
  }, [message('x')]);
  assert.equal(globalThis.fetch, original);
});
