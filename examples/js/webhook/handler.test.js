import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';

import { Http, message, run } from 'sluice-sdk/testing';
import { TimeoutError, handle, retryAfterMs, settle, signer, withTimeout } from './handler.js';

const URL = 'https://hooks.example.com/orders';
const env = { WEBHOOK_SECRET: 's3cret' };
const hook = (body = '{}', url = URL, options = {}) =>
  message(body, { ...options, attributes: [['webhook-url', url], ...(options.attributes ?? [])] });

test('posts the body signed, with the message id, and acks a 2xx', async () => {
  const http = new Http().stub(URL, { status: 204 });
  const msg = hook('{"id": "o-1"}', URL, { id: 'm-1', attributes: [['content-type', 'application/json']] });
  const report = await run(handle, [msg], { env, http });
  assert.deepEqual(report.acked, ['m-1']);
  const [sent] = report.requests;
  assert.deepEqual([sent.method, sent.url, sent.text()], ['POST', URL, '{"id": "o-1"}']);
  const expected = createHmac('sha256', 's3cret').update('{"id": "o-1"}').digest('hex');
  assert.equal(sent.header('sluice-signature'), `sha256=${expected}`);
  assert.equal(sent.header('Idempotency-Key'), 'm-1');
  assert.equal(sent.header('content-type'), 'application/json');
});

test('429 and 5xx retry after the receiver\'s Retry-After', async () => {
  const http = new Http()
    .stub('https://a.example.com/', { status: 429, headers: { 'Retry-After': '30' } })
    .stub('https://b.example.com/', { status: 503 })
    .stub('https://c.example.com/', { status: 500, headers: { 'Retry-After': 'Wed, 21 Oct 2015 07:28:00 GMT' } });
  const report = await run(handle, [hook('{}', 'https://a.example.com/'), hook('{}', 'https://b.example.com/'), hook('{}', 'https://c.example.com/')], { env, http });
  assert.deepEqual(report.acked, []);
  assert.deepEqual(report.disposition('msg-1'), { retry: 30_000 });
  assert.deepEqual(report.disposition('msg-2'), { retry: null });
  assert.deepEqual(report.disposition('msg-3'), { retry: null });
});

test('other statuses dead-letter with the status', async () => {
  const http = new Http().stubPrefix('https://hooks.example.com/gone', { status: 410 }).stubPrefix('https://hooks.example.com/moved', { status: 301 });
  const report = await run(handle, [hook('{}', 'https://hooks.example.com/gone/1'), hook('{}', 'https://hooks.example.com/moved')], { env, http });
  assert.deepEqual(report.disposition('msg-1'), { deadLetter: 'HTTP 410' });
  assert.deepEqual(report.disposition('msg-2'), { deadLetter: 'HTTP 301' });
});

test('failed fetches retry with the queue\'s backoff, denials included', async (t) => {
  t.mock.method(console, 'log', () => {});
  for (const error of ['connection-timeout', 'connection-refused', 'DNS-error', 'HTTP-request-denied']) {
    const http = new Http().stub(URL, { error }).stub('https://ok.example.com/');
    const report = await run(handle, [hook(), hook('{}', 'https://ok.example.com/')], { env, http });
    assert.deepEqual(report.acked, ['msg-2']);
    assert.deepEqual(report.disposition('msg-1'), { retry: null });
  }
});

test('a missing or invalid webhook-url dead-letters', async () => {
  const report = await run(handle, [message('{}'), hook('{}', 'ftp://files.example.com/x')], { env });
  assert.deepEqual(report.disposition('msg-1'), { deadLetter: 'no `webhook-url` attribute: the message does not say where to deliver it' });
  assert.deepEqual(report.disposition('msg-2'), { deadLetter: '`webhook-url` ftp://files.example.com/x is not an http:// or https:// URL' });
  assert.deepEqual(report.requests, []);
});

test('a missing secret fails the batch', async () => {
  const report = await run(handle, [hook()], { env: {}, http: new Http().stub(URL) });
  assert.match(report.error, /^WEBHOOK_SECRET is not set: deploy the function with --env WEBHOOK_SECRET=/);
  assert.deepEqual(report.requests, []);
});

test('settle, Retry-After, the signature and the timeout', async () => {
  assert.equal(settle(200, null), undefined);
  assert.deepEqual(settle(429, '5'), { retry: 5000 });
  assert.deepEqual(settle(502, null), { retry: null });
  assert.deepEqual(settle(404, '5'), { deadLetter: 'HTTP 404' });
  assert.equal(retryAfterMs(' 7 '), 7000);
  assert.equal(retryAfterMs('-1'), null);
  assert.equal(retryAfterMs('99999999999'), 0xffff_ffff);
  const sign = await signer('key');
  assert.equal(
    await sign(new TextEncoder().encode('The quick brown fox jumps over the lazy dog')),
    'sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8',
  );
  await assert.rejects(withTimeout(new Promise(() => {}), 5), TimeoutError);
  assert.equal(await withTimeout(Promise.resolve('fast'), 1000), 'fast');
});
