// The glue between a handler function and the component's `handle` export. The entry module
// `scripts/build-js` generates imports the host's outbox and WASI environment, installs them with
// `installOutbox` and `installEnvironment`, and exports `handle` through `dispatch`. It runs only
// inside a component.

import { Message, SluiceError } from './index.js';
import { ENV, KV, OUTBOX, failuresOf, isThenable, reasonOf } from './internal.js';

/**
 * Routes sends, publications and replies to the host's `sluice:queue/outbox` import; a refusal
 * becomes a `SluiceError`.
 */
export function installOutbox({ send, publish, reply }) {
  globalThis[OUTBOX] = {
    send: (outgoing) => host(() => send(outgoing)),
    publish: (topic, body, attributes) => host(() => publish(topic, body, attributes)),
    reply: (messageId, body, attributes) => host(() => reply(messageId, body, attributes)),
  };
}

function host(call) {
  try {
    call();
  } catch (error) {
    // jco throws a ComponentError whose `payload` is the `err` string of the WIT result.
    const reason = error && typeof error.payload === 'string' ? error.payload : String(error);
    throw new SluiceError(reason);
  }
}

/**
 * Makes `kv.open` reach the host's `wasi:keyvalue` buckets. jco throws a ComponentError whose
 * `payload` is the WIT error variant; `access-denied` says which setting lists buckets.
 */
export function installKv({ open }, { increment }) {
  const call = (run) => {
    try {
      return run();
    } catch (error) {
      const payload = error?.payload;
      if (payload?.tag === 'access-denied') {
        throw new SluiceError(
          "the function's version does not list this bucket; add it to kv_buckets (sluice deploy --kv BUCKET)",
        );
      }
      throw new SluiceError(payload?.val ?? payload?.tag ?? String(error));
    }
  };
  globalThis[KV] = {
    open(name) {
      const bucket = call(() => open(name));
      return {
        get: (key) => call(() => bucket.get(key)),
        set: (key, value) => call(() => bucket.set(key, value)),
        delete: (key) => call(() => bucket.delete(key)),
        exists: (key) => call(() => bucket.exists(key)),
        keys() {
          const keys = [];
          let cursor;
          do {
            const page = call(() => bucket.listKeys(cursor));
            keys.push(...page.keys);
            cursor = page.cursor;
          } while (cursor !== undefined);
          return keys;
        },
        increment: (key, delta) => Number(call(() => increment(bucket, key, BigInt(delta)))),
      };
    },
  };
}

/** Makes `env(name)` read the component's WASI environment (the function's `env` config). */
export function installEnvironment(getEnvironment) {
  let vars;
  globalThis[ENV] = (name) => {
    vars ??= new Map(getEnvironment());
    return vars.get(name);
  };
}

/**
 * Calls `handler` on the batch the host delivered and converts the result to the WIT types. An
 * `async` handler's Promise is returned as it is: componentize-js runs the event loop (where
 * `fetch` makes progress) until it settles. Anything thrown, or a rejection, is printed (stack
 * included) to stderr, which the host keeps as the invocation's log, and becomes the `err`
 * string the host records as the reason: jco's own conversion of a thrown `Error` fails with
 * "expected a string" and loses the message.
 */
export function dispatch(handler, batch) {
  try {
    const returned = handler(batch.map((m) => new Message(m)));
    if (isThenable(returned)) return Promise.resolve(returned).then(toWit, fail);
    return toWit(returned);
  } catch (error) {
    fail(error);
  }
}

function toWit(returned) {
  try {
    return failuresOf(returned).map(({ id, retry, deadLetter }) => ({
      id,
      disposition:
        deadLetter !== undefined
          ? { tag: 'dead-letter', val: deadLetter }
          : { tag: 'retry', val: retry ?? undefined },
    }));
  } catch (error) {
    fail(error);
  }
}

function fail(error) {
  console.error(error instanceof Error && error.stack ? `${reasonOf(error)}\n${error.stack}` : reasonOf(error));
  throw reasonOf(error);
}
