// The glue between a handler function and the component's `handle` export. The entry module
// `scripts/build-js` generates imports the host's outbox and WASI environment, installs them with
// `installOutbox` and `installEnvironment`, and exports `handle` through `dispatch`. It runs only
// inside a component.

import { Message, SluiceError } from './index.js';
import { ENV, OUTBOX, failuresOf, reasonOf } from './internal.js';

/** Routes `send` to the host's `sluice:queue/outbox` import; a refusal becomes a `SluiceError`. */
export function installOutbox(hostSend) {
  globalThis[OUTBOX] = (outgoing) => {
    try {
      hostSend(outgoing);
    } catch (error) {
      // jco throws a ComponentError whose `payload` is the `err` string of the WIT result.
      const reason = error && typeof error.payload === 'string' ? error.payload : String(error);
      throw new SluiceError(reason);
    }
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
 * Calls `handler` on the batch the host delivered and converts the result to the WIT types.
 * Anything thrown is printed (stack included) to stderr, which the host keeps as the invocation's
 * log, and becomes the `err` string the host records as the reason: jco's own conversion of a
 * thrown `Error` fails with "expected a string" and loses the message.
 */
export function dispatch(handler, batch) {
  try {
    const messages = batch.map((m) => new Message(m));
    return failuresOf(handler(messages)).map(({ id, retry, deadLetter }) => ({
      id,
      disposition:
        deadLetter !== undefined
          ? { tag: 'dead-letter', val: deadLetter }
          : { tag: 'retry', val: retry ?? undefined },
    }));
  } catch (error) {
    console.error(error instanceof Error && error.stack ? `${reasonOf(error)}\n${error.stack}` : reasonOf(error));
    throw reasonOf(error);
  }
}
