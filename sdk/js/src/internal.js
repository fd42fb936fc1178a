// What the component glue (./component.js) and the test harness (./testing.js) share, so that
// both treat a handler's result and its errors exactly the same. Not part of the public API.

import { Outcome, SluiceError } from './index.js';

/** The global through which sends, publications and replies reach the outbox or the test recorder. */
export const OUTBOX = Symbol.for('sluice-sdk.outbox');
/** The global through which `env` reads the environment. */
export const ENV = Symbol.for('sluice-sdk.env');
/** The global through which `kv` reaches the host's buckets or the test harness's. */
export const KV = Symbol.for('sluice-sdk.kv');

/** Whether a handler returned a Promise (it is `async`): its outcome is what it resolves to. */
export function isThenable(returned) {
  return returned !== null && typeof returned === 'object' && typeof returned.then === 'function';
}

/**
 * The failures of what a handler returned (or its Promise resolved to): an `Outcome`, or
 * `undefined` to acknowledge all. Shared by the component glue and the test harness, so both
 * accept exactly the same.
 */
export function failuresOf(returned) {
  if (returned === undefined || returned === null) return [];
  if (!(returned instanceof Outcome)) {
    throw new TypeError('the handler returned something else than an Outcome; return an Outcome, or nothing to acknowledge the batch');
  }
  return returned.failures;
}

/** The reason recorded for a thrown value: a `SluiceError`'s message, `Name: message` for other errors. */
export function reasonOf(thrown) {
  if (thrown instanceof SluiceError) return thrown.message;
  if (thrown instanceof Error) return thrown.message ? `${thrown.name}: ${thrown.message}` : thrown.name;
  return String(thrown);
}
