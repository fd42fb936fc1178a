// A webhook deliverer: POSTs each message's body to the URL in its `webhook-url` attribute,
// signed, and settles the message by the answer, with the standard `fetch`. The JavaScript twin
// of examples/webhook (and examples/python/webhook).
//
// Each request carries `Sluice-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the
// function's WEBHOOK_SECRET>` and `Idempotency-Key: <message id>` (a message is delivered at
// least once; the receiver uses the key to ignore a repeat).
//
// - 2xx: acknowledged.
// - 429, 5xx, no answer within 10 s, or a failed fetch: retried, after the `Retry-After` the
//   receiver asked for (in seconds) or else the queue's backoff.
// - any other status: dead-lettered with the reason `HTTP <status>` (redirects are not followed).
// - no `webhook-url`, or one that is not an http(s) URL: dead-lettered with the reason.
//
// Unlike the Rust and Python twins, it cannot dead-letter a host the function may not reach at
// once: the host's `fetch` rejects with the same TypeError whatever the `wasi:http` error was,
// `HTTP-request-denied` included, so such a message is retried until the queue's max attempts
// dead-letter it. The invocation's log says the request was denied and which pattern to add.
// - WEBHOOK_SECRET not set: the whole batch fails (and is retried) until it is.
//
//   sluice deploy handler.wasm --name webhook --queue webhooks \
//       --allow-outbound https://hooks.example.com --env WEBHOOK_SECRET=...

import { Outcome, SluiceError, env } from 'sluice-sdk';

/** How long one delivery may take: a receiver that hangs costs a retry of its message, not the batch. */
export const TIMEOUT_MS = 10_000;

/** @param {import('sluice-sdk').Message[]} batch */
export async function handle(batch) {
  const secret = env('WEBHOOK_SECRET');
  if (!secret) {
    throw new SluiceError(
      'WEBHOOK_SECRET is not set: deploy the function with --env WEBHOOK_SECRET=<the key receivers check Sluice-Signature with>',
    );
  }
  const sign = await signer(secret);
  const outcome = new Outcome();
  for (const msg of batch) {
    const url = msg.attribute('webhook-url');
    if (!url) {
      outcome.deadLetter(msg, 'no `webhook-url` attribute: the message does not say where to deliver it');
      continue;
    }
    if (!/^https?:\/\/[^/]/.test(url)) {
      outcome.deadLetter(msg, `\`webhook-url\` ${url} is not an http:// or https:// URL`);
      continue;
    }
    let response;
    try {
      response = await withTimeout(
        fetch(url, {
          method: 'POST',
          body: msg.body,
          headers: {
            'Content-Type': msg.attribute('content-type') ?? 'application/octet-stream',
            'Sluice-Signature': await sign(msg.body),
            'Idempotency-Key': msg.id,
          },
        }),
        TIMEOUT_MS,
      );
    } catch (error) {
      console.log(`${msg.id}: POST ${url}: ${error.message}; retrying`);
      outcome.retry(msg);
      continue;
    }
    const decision = settle(response.status, response.headers.get('retry-after'));
    if (decision?.retry !== undefined) outcome.retry(msg, decision.retry === null ? {} : { delayMs: decision.retry });
    else if (decision?.deadLetter !== undefined) outcome.deadLetter(msg, decision.deadLetter);
  }
  return outcome;
}

/** A function from a body to its `Sluice-Signature` header's value, keyed with `secret`. */
export async function signer(secret) {
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return async (body) => {
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, body));
    return `sha256=${Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  };
}

/**
 * What a response means for its message: `undefined` to acknowledge it, `{ retry }` (a delay in
 * milliseconds, or null for the queue's backoff) or `{ deadLetter }` (the reason).
 */
export function settle(status, retryAfter) {
  if (status >= 200 && status < 300) return undefined;
  if (status === 429 || status >= 500) return { retry: retryAfterMs(retryAfter) };
  return { deadLetter: `HTTP ${status}` };
}

/** `Retry-After` in milliseconds when it is a number of seconds; null (the queue's backoff) otherwise. */
export function retryAfterMs(value) {
  if (value === null || value === undefined || !/^\s*\d+\s*$/.test(value)) return null;
  return Math.min(Number(value) * 1000, 0xffff_ffff);
}

/** No answer in time. */
export class TimeoutError extends Error {}

// The fetch of componentize-js does not take an AbortSignal into account: race it with a timer
// instead. The request itself ends at the latest with the invocation.
export function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
