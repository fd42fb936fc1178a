// A native test harness: run a handler with `node --test`, without a host or WebAssembly.
//
//   import { run, message } from 'sluice-sdk/testing';
//   const report = run(handle, [message('hi'), message(new Uint8Array([0xff]))]);
//   assert.deepEqual(report.acked, ['msg-1']);
//   assert.equal(report.sent[0].queue, 'upper');

import { Message, SluiceError } from './index.js';
import { ENV, OUTBOX, failuresOf, reasonOf } from './internal.js';

const encoder = new TextEncoder();

/**
 * A test message with this body (text is encoded as UTF-8). Options: `id` (default `msg-N`, its
 * 1-based position in the batch), `queue` ("test"), `attributes` (an object or `[name, value]`
 * pairs), `attempt` (1), `enqueuedAtMs` (now).
 */
export function message(body, options = {}) {
  const attributes = Array.isArray(options.attributes)
    ? options.attributes
    : Object.entries(options.attributes ?? {});
  return {
    body: typeof body === 'string' ? encoder.encode(body) : body,
    id: options.id,
    queue: options.queue ?? 'test',
    attributes,
    attempt: options.attempt ?? 1,
    enqueuedAtMs: options.enqueuedAtMs,
  };
}

/** A test message whose body is `value` as JSON; options as for `message`. */
export function jsonMessage(value, options = {}) {
  return message(JSON.stringify(value), options);
}

/** The `Message` a handler would receive for test message `spec` at 1-based `position`. */
export function build(spec, position = 1) {
  return new Message({
    ...spec,
    id: spec.id ?? `msg-${position}`,
    enqueuedAtMs: spec.enqueuedAtMs ?? Date.now(),
  });
}

/** A message the handler sent during a run. */
export class SentMessage {
  constructor({ queue, body, attributes, delayMs }) {
    this.queue = queue;
    this.body = body;
    this.attributes = attributes;
    this.delayMs = delayMs;
  }
  text() {
    return new TextDecoder().decode(this.body);
  }
  json() {
    return JSON.parse(this.text());
  }
  attribute(name) {
    return this.attributes.find(([key]) => key === name)?.[1];
  }
}

/** What happened in a run; see `run`. */
export class Report {
  constructor(ids, failures, error, exception, sent) {
    this.ids = ids;
    /** The marked messages, `{ id, retry }` or `{ id, deadLetter }` (none if the batch failed). */
    this.failures = failures;
    /** The reason the batch failed as a whole, as the host records it; `undefined` if it did not. */
    this.error = error;
    /** The thrown value that failed the batch, if any. */
    this.exception = exception;
    /** Every message sent, in order, whether or not the host would commit them. */
    this.sent = sent;
  }
  /** Whether the handler returned (some messages may still have failed). */
  get ok() {
    return this.error === undefined;
  }
  /** The ids of the acknowledged messages, in batch order (none if the batch failed). */
  get acked() {
    if (!this.ok) return [];
    const failed = new Set(this.failures.map((f) => f.id));
    return this.ids.filter((id) => !failed.has(id));
  }
  /** What the host would commit: everything sent if the handler returned, else nothing. */
  get committed() {
    return this.ok ? this.sent : [];
  }
  /** What the handler asked for message `id`: `{ retry }`, `{ deadLetter }` or `undefined` (acked). */
  disposition(id) {
    const failure = this.failures.find((f) => f.id === id);
    if (!failure) return undefined;
    const { id: _, ...disposition } = failure;
    return disposition;
  }
}

/**
 * Runs `handler` on one batch of `messages` and reports what happened. With `queues`, only those
 * queues exist: a send to any other throws, as it does on the host. With `env` (an object),
 * `env(name)` reads only it, as it reads only the function's own environment on the host.
 * A thrown value is caught and reported as the host reports it.
 */
export function run(handler, messages, { queues, env } = {}) {
  const batch = [...messages].map((m, i) => (m instanceof Message ? m : build(m, i + 1)));
  const known = queues ? new Set(queues) : undefined;
  const sent = [];
  const previous = globalThis[OUTBOX];
  const previousEnv = globalThis[ENV];
  if (env) globalThis[ENV] = (name) => (Object.hasOwn(env, name) ? String(env[name]) : undefined);
  globalThis[OUTBOX] = (outgoing) => {
    if (known && !known.has(outgoing.queue)) {
      throw new SluiceError(`queue \`${outgoing.queue}\` does not exist`);
    }
    sent.push(new SentMessage(outgoing));
  };
  let failures = [];
  let error;
  let exception;
  try {
    failures = failuresOf(handler(batch));
  } catch (thrown) {
    error = reasonOf(thrown);
    exception = thrown;
  } finally {
    globalThis[OUTBOX] = previous;
    globalThis[ENV] = previousEnv;
  }
  return new Report(
    batch.map((m) => m.id),
    failures,
    error,
    exception,
    sent,
  );
}
