// Write Sluice queue handlers in JavaScript.
//
// A handler is a function from a batch (an array of `Message`) to an `Outcome`, or `undefined`,
// which acknowledges the whole batch. `scripts/build-js` turns the module exporting it as
// `handle` into a WebAssembly component that the Sluice host calls once per batch, in a fresh
// instance. Throwing fails the whole batch: it is retried, everything sent is discarded, and the
// error's message is the invocation's reason (its stack is in the invocation's log).

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** Raise to fail the whole batch with this message (any thrown value does the same). */
export class SluiceError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SluiceError';
  }
}

/** One message delivered to a handler. */
export class Message {
  constructor({ id, queue, body, attributes = [], attempt = 1, enqueuedAtMs = 0 }) {
    /** Unique within the host and stable across redeliveries. */
    this.id = id;
    /** The queue the message was leased from. */
    this.queue = queue;
    /** The raw body, exactly as the producer sent it. */
    this.body = body instanceof Uint8Array ? body : toBytes(body);
    /** `[name, value]` pairs, in the order the producer gave them. */
    this.attributes = attributes.map(([name, value]) => [name, value]);
    /** How many times it has been delivered, this delivery included (1 on the first). */
    this.attempt = attempt;
    /** When the producer's enqueue was committed, in milliseconds since the Unix epoch. */
    this.enqueuedAtMs = Number(enqueuedAtMs);
  }

  /** The body as text; throws a `SluiceError` if it is not UTF-8. */
  text() {
    try {
      return decoder.decode(this.body);
    } catch {
      throw new SluiceError('body is not valid UTF-8');
    }
  }

  /** The body parsed as JSON; throws a `SluiceError` saying why if it does not parse. */
  json() {
    const text = this.text();
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new SluiceError(`invalid JSON body: ${error.message}`);
    }
  }

  /** The value of the first attribute called `name`, or `undefined`. */
  attribute(name) {
    const found = this.attributes.find(([key]) => key === name);
    return found ? found[1] : undefined;
  }
}

/**
 * What a handler returns for a batch that did not fail as a whole: every message not marked is
 * acknowledged. Marking a message again replaces its disposition.
 */
export class Outcome {
  #failures = new Map();

  /** Retry `msg` (a `Message` or an id) after `delayMs`, or after the queue's backoff. */
  retry(msg, { delayMs } = {}) {
    if (delayMs !== undefined) checkDelay(delayMs);
    return this.#mark(msg, { retry: delayMs ?? null });
  }

  /** Dead-letter `msg` with `reason` (an Error's message, or the value as text). */
  deadLetter(msg, reason) {
    const text = reason instanceof Error ? reason.message : String(reason);
    return this.#mark(msg, { deadLetter: text });
  }

  /** The marked messages, `{ id, retry }` or `{ id, deadLetter }`, in the order first marked. */
  get failures() {
    return [...this.#failures].map(([id, disposition]) => ({ id, ...disposition }));
  }

  #mark(msg, disposition) {
    this.#failures.set(typeof msg === 'string' ? msg : msg.id, disposition);
    return this;
  }
}

/** A message to another queue: `new Outgoing('audit').json(v).attribute('k', 'v').send()`. */
export class Outgoing {
  constructor(queue) {
    this.queue = queue;
    this.body = new Uint8Array();
    this.attributes = [];
    this.delayMs = 0;
  }

  /** Sets the body: bytes, or text sent as UTF-8. */
  setBody(body) {
    this.body = toBytes(body);
    return this;
  }

  /** Sets the body to `value` as JSON. */
  json(value) {
    return this.setBody(JSON.stringify(value));
  }

  /** Adds an attribute. */
  attribute(name, value) {
    this.attributes.push([String(name), String(value)]);
    return this;
  }

  /** Keeps the message invisible for `delayMs` after it is committed. */
  delay(delayMs) {
    checkDelay(delayMs);
    this.delayMs = delayMs;
    return this;
  }

  /** Hands the message to the host's outbox; throws a `SluiceError` if the host refuses it. */
  send() {
    const deliver = globalThis[OUTBOX];
    if (!deliver) {
      throw new SluiceError(
        'send outside a handler run: natively, sends work only inside run() of sluice-sdk/testing',
      );
    }
    deliver({
      queue: this.queue,
      body: this.body,
      attributes: this.attributes.map(([k, v]) => [k, v]),
      delayMs: this.delayMs,
    });
  }
}

/** Sends `body` (bytes, or text as UTF-8) to `queue`. */
export function send(queue, body, { attributes = [], delayMs = 0 } = {}) {
  const outgoing = new Outgoing(queue).setBody(body).delay(delayMs);
  for (const [name, value] of attributes) outgoing.attribute(name, value);
  outgoing.send();
}

/**
 * The value of the function's environment variable `name` (set with `env=NAME=VALUE` when it is
 * deployed), or `undefined`. Natively: `process.env`, or the `env` option of the test harness.
 */
export function env(name) {
  const lookup = globalThis[ENV];
  if (lookup) return lookup(name);
  return globalThis.process?.env?.[name];
}

/** Sends `value` serialized as JSON to `queue`. */
export function sendJson(queue, value, options = {}) {
  send(queue, JSON.stringify(value), options);
}

// Where sends go, shared through a global so that two copies of this module agree: the host's
// outbox inside a component (set by ./component.js), the recorder of ./testing.js natively.
const OUTBOX = Symbol.for('sluice-sdk.outbox');
// Likewise for the environment: the component's WASI environment, or the harness's `env`.
const ENV = Symbol.for('sluice-sdk.env');

function toBytes(body) {
  if (typeof body === 'string') return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError(`a body is a string or bytes, not ${typeof body}`);
}

function checkDelay(delayMs) {
  if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 0xffff_ffff) {
    throw new RangeError(`a delay is a whole number of milliseconds up to 4294967295, not ${delayMs}`);
  }
}
