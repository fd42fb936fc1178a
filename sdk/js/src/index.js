// Write Sluice queue handlers in JavaScript.
//
// A handler is a function from a batch (an array of `Message`) to an `Outcome`, or `undefined`,
// which acknowledges the whole batch; it may be `async` (return a Promise of either), to `await`
// the standard `fetch`, which reaches the hosts the function's version allows. `scripts/build-js`
// turns the module exporting it as `handle` into a WebAssembly component (world
// `sluice:queue/handler@0.3.0`) that the Sluice host calls once per batch, in a fresh instance.
// Throwing (or rejecting) fails the whole batch: it is retried, everything sent, published and
// replied is discarded, and the error's message is the invocation's reason (its stack is in the
// invocation's log).

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
  constructor({ id, queue, body, attributes = [], attempt = 1, enqueuedAtMs = 0, priority = 4, group }) {
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
    /** 0 (lowest) to 9 (highest); 4 unless the producer gave one. */
    this.priority = priority;
    /** The ordered group the message belongs to, or `undefined`. */
    this.group = group ?? undefined;
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

/**
 * What `Outgoing`, `Publication` and `Reply` share: a body and attributes, set by chaining.
 */
class Draft {
  constructor() {
    this.body = new Uint8Array();
    this.attributes = [];
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

  /** Adds an attribute (name, value). */
  attribute(name, value) {
    this.attributes.push([String(name), String(value)]);
    return this;
  }
}

/**
 * A message to another queue:
 * `new Outgoing('emails').json(v).attribute('k', 'v').delay(60_000).setPriority(7).setGroup('ada').send()`.
 */
export class Outgoing extends Draft {
  constructor(queue) {
    super();
    this.queue = queue;
    this.delayMs = 0;
    /** 0 (lowest) to 9 (highest), or `undefined` for the default (4). */
    this.priority = undefined;
    /** The ordered group to deliver it in, or `undefined`. */
    this.group = undefined;
  }

  /** Keeps the message invisible for `delayMs` after it is committed. */
  delay(delayMs) {
    checkDelay(delayMs);
    this.delayMs = delayMs;
    return this;
  }

  /** Sets the priority: 0 (lowest) to 9 (highest); the host refuses anything else. */
  setPriority(priority) {
    if (!Number.isInteger(priority) || priority < 0 || priority > 255) {
      throw new RangeError(`a priority is a whole number from 0 to 9, not ${priority}`);
    }
    this.priority = priority;
    return this;
  }

  /**
   * Puts the message in the ordered group `group` (1 to 128 bytes, no control characters): a
   * group's messages are delivered one at a time, in the order they were committed.
   */
  setGroup(group) {
    this.group = String(group);
    return this;
  }

  /** Hands the message to the host's outbox; throws a `SluiceError` if the host refuses it. */
  send() {
    outbox('send').send({
      queue: this.queue,
      body: this.body,
      attributes: this.attributes.map(([k, v]) => [k, v]),
      delayMs: this.delayMs,
      priority: this.priority,
      group: this.group,
    });
  }
}

/** Sends `body` (bytes, or text as UTF-8) to `queue`. */
export function send(queue, body, { attributes = [], delayMs = 0, priority, group } = {}) {
  const outgoing = new Outgoing(queue).setBody(body).delay(delayMs);
  for (const [name, value] of attributes) outgoing.attribute(name, value);
  if (priority !== undefined) outgoing.setPriority(priority);
  if (group !== undefined) outgoing.setGroup(group);
  outgoing.send();
}

/** Sends `value` serialized as JSON to `queue`. */
export function sendJson(queue, value, options = {}) {
  send(queue, JSON.stringify(value), options);
}

/**
 * A message to publish to a topic: when the batch is acknowledged, a copy goes to every
 * subscription of the topic whose filter matches its attributes.
 * `new Publication('orders').json(v).attribute('kind', 'book').publish()`.
 */
export class Publication extends Draft {
  constructor(topic) {
    super();
    this.topic = topic;
  }

  /** Hands the publication to the host's outbox; throws a `SluiceError` if the host refuses it. */
  publish() {
    outbox('publish').publish(this.topic, this.body, this.attributes.map(([k, v]) => [k, v]));
  }
}

/** Publishes `body` (bytes, or text as UTF-8) to `topic`. */
export function publish(topic, body, { attributes = [] } = {}) {
  const publication = new Publication(topic).setBody(body);
  for (const [name, value] of attributes) publication.attribute(name, value);
  publication.publish();
}

/** Publishes `value` serialized as JSON to `topic`. */
export function publishJson(topic, value, options = {}) {
  publish(topic, JSON.stringify(value), options);
}

/**
 * The answer to one message of the batch, for the producer waiting on it (one that enqueued
 * with `Sluice-Reply-Timeout-Ms`). It is committed only with the acknowledgement of that
 * message: if the message is retried or dead-lettered, or the batch fails, it is discarded.
 * `Reply.to(msg).json(v).attribute('status', 'done').send()`.
 */
export class Reply extends Draft {
  constructor(messageId) {
    super();
    this.messageId = messageId;
  }

  /** A reply to `message` (a `Message` of the batch, or its id). */
  static to(message) {
    return new Reply(typeof message === 'string' ? message : message.id);
  }

  /** Hands the reply to the host's outbox; throws a `SluiceError` if the host refuses it. */
  send() {
    outbox('reply').reply(this.messageId, this.body, this.attributes.map(([k, v]) => [k, v]));
  }
}

/** Replies `body` (bytes, or text as UTF-8) to `message` (a `Message` of the batch, or its id). */
export function reply(message, body, { attributes = [] } = {}) {
  const answer = Reply.to(message).setBody(body);
  for (const [name, value] of attributes) answer.attribute(name, value);
  answer.send();
}

/** Replies `value`, serialized as JSON, to `message`. */
export function replyJson(message, value, options = {}) {
  reply(message, JSON.stringify(value), options);
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

/**
 * Key-value state committed with the acknowledgement, over the standard `wasi:keyvalue`. A
 * handler opens the buckets its function's version lists (`kv_buckets`; `sluice deploy --kv
 * counts`); any other fails with a `SluiceError` saying so. Writes commit in the same
 * transaction as the batch's acknowledgement, only if the handler returns: a throw, a trap or
 * a timeout discards them. Reads see the invocation's own writes first. `increment` adds its
 * delta at commit, so concurrent increments never lose one.
 *
 *     import { kv } from 'sluice-sdk';
 *     const counts = kv.open('counts');
 *     counts.increment(`count:${msg.attribute('customer')}`);
 *
 * Natively, `run` of `sluice-sdk/testing` gives the handler in-memory buckets (`kv:`).
 */
export const kv = {
  /** Opens bucket `name`. */
  open(name) {
    return new Bucket(name, store('kv.open').open(name));
  },
};

/** An open bucket: keys are strings (up to 1 KiB), values bytes (up to 1 MiB). */
export class Bucket {
  #handle;
  constructor(name, handle) {
    /** The bucket's name. */
    this.name = name;
    this.#handle = handle;
  }
  /** The value of `key` (a Uint8Array), or `undefined` when it has none. */
  get(key) {
    return this.#handle.get(key);
  }
  /** The value of `key` as text (UTF-8), or `undefined`. */
  getText(key) {
    const value = this.get(key);
    return value === undefined ? undefined : textDecoder.decode(value);
  }
  /** The value of `key` parsed as JSON, or `undefined`. */
  getJson(key) {
    const text = this.getText(key);
    return text === undefined ? undefined : JSON.parse(text);
  }
  /** Sets `key` to `value` (a string is stored as UTF-8). */
  set(key, value) {
    this.#handle.set(key, toBytes(value));
  }
  /** Sets `key` to `value` as JSON. */
  setJson(key, value) {
    this.set(key, JSON.stringify(value));
  }
  /** Deletes `key`; nothing happens when it has no value. */
  delete(key) {
    this.#handle.delete(key);
  }
  /** Whether `key` has a value. */
  exists(key) {
    return this.#handle.exists(key);
  }
  /** The bucket's keys starting with `prefix`, in byte order. */
  keys(prefix = '') {
    return this.#handle.keys().filter((key) => key.startsWith(prefix));
  }
  /** Adds `delta` (default 1) to the number at `key` (0 when absent); returns the new value. */
  increment(key, delta = 1) {
    return this.#handle.increment(key, delta);
  }
}

const textDecoder = new TextDecoder();

function store(what) {
  const target = globalThis[KV];
  if (!target) {
    throw new SluiceError(
      `${what} outside a handler run: natively, buckets work only inside run() of sluice-sdk/testing (with kv:)`,
    );
  }
  return target;
}

// Where sends, publications and replies go, shared through a global so that two copies of this
// module agree: the host's outbox inside a component (set by ./component.js), the recorder of
// ./testing.js natively. Either is an object with `send`, `publish` and `reply`.
const OUTBOX = Symbol.for('sluice-sdk.outbox');
// Likewise for the environment: the component's WASI environment, or the harness's `env`.
const ENV = Symbol.for('sluice-sdk.env');
// And for buckets: the host's `wasi:keyvalue`, or the harness's in-memory ones.
const KV = Symbol.for('sluice-sdk.kv');

function outbox(what) {
  const target = globalThis[OUTBOX];
  if (!target) {
    throw new SluiceError(
      `${what} outside a handler run: natively, the outbox works only inside run() of sluice-sdk/testing`,
    );
  }
  return target;
}

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
