// A native test harness: run a handler with `node --test`, without a host or WebAssembly.
//
//   import { run, message, Http } from 'sluice-sdk/testing';
//   const report = run(handle, [message('hi'), message(new Uint8Array([0xff]))]);
//   assert.deepEqual(report.acked, ['msg-1']);
//   assert.equal(report.sent[0].queue, 'upper');
//
// The outbox checks what the host checks: a destination must exist (with `queues` / `topics`),
// a priority is 0 to 9, a group key 1 to 128 bytes without control characters, and a message of
// the batch gets at most one reply. There is no network: during a run the global `fetch`
// answers from the stubs of an `Http` (per URL or URL prefix, responses or failures), and a
// request to anything not stubbed fails the test with an `UnstubbedRequest`. An `async` handler
// makes `run` return a Promise of the report:
//
//   const http = new Http().stub('https://hooks.example.com/a', { status: 503 });
//   const report = await run(handle, [message('hi')], { http });
//   assert.equal(report.requests[0].header('idempotency-key'), 'msg-1');
//
// Key-value buckets live in a `Kv` passed as `kv`; the handler opens only its buckets, and its
// writes reach them only if it returns, as on the host:
//
//   const state = new Kv(['counts']);
//   run(handle, [message('x', { attributes: { customer: 'acme' } })], { kv: state });
//   assert.equal(state.getText('counts', 'count:acme'), '1');

import { Message, SluiceError } from './index.js';
import { ENV, KV, OUTBOX, failuresOf, isThenable, reasonOf } from './internal.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const MAX_PRIORITY = 9;
const DEFAULT_PRIORITY = 4;
const MAX_GROUP_BYTES = 128;

/**
 * A test message with this body (text is encoded as UTF-8). Options: `id` (default `msg-N`, its
 * 1-based position in the batch), `queue` ("test"), `attributes` (an object or `[name, value]`
 * pairs), `attempt` (1), `enqueuedAtMs` (now), `priority` (4), `group` (none).
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
    priority: options.priority ?? DEFAULT_PRIORITY,
    group: options.group,
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

/** What sent messages, publications and replies share: a body and attributes. */
class Recorded {
  text() {
    return decoder.decode(this.body);
  }
  json() {
    return JSON.parse(this.text());
  }
  attribute(name) {
    return this.attributes.find(([key]) => key === name)?.[1];
  }
}

/** A message the handler sent during a run. */
export class SentMessage extends Recorded {
  constructor({ queue, body, attributes, delayMs, priority, group }) {
    super();
    this.queue = queue;
    this.body = body;
    this.attributes = attributes;
    this.delayMs = delayMs;
    /** As given to the send: `undefined` means the queue's default (4). */
    this.priority = priority;
    this.group = group;
  }
}

/** A message the handler published to a topic during a run. */
export class PublishedMessage extends Recorded {
  constructor(topic, body, attributes) {
    super();
    this.topic = topic;
    this.body = body;
    this.attributes = attributes;
  }
}

/** A reply the handler made during a run. */
export class ReplyMessage extends Recorded {
  constructor(messageId, body, attributes) {
    super();
    this.messageId = messageId;
    this.body = body;
    this.attributes = attributes;
  }
}

/** An HTTP request the handler made with `fetch` during a run (stubbed or not). */
export class SentRequest {
  constructor(method, url, headers, body) {
    this.method = method;
    this.url = url;
    /** A `Headers`. */
    this.headers = headers;
    /** The body's bytes (empty without one). */
    this.body = body;
  }
  /** The value of header `name` (any case), or `undefined`. */
  header(name) {
    return this.headers.get(name) ?? undefined;
  }
  text() {
    return decoder.decode(this.body);
  }
  json() {
    return JSON.parse(this.text());
  }
}

/**
 * A handler fetched a URL that no stub of the run's `Http` answers. `run` throws it even when
 * the handler caught it, so the test fails and names the URL.
 */
export class UnstubbedRequest extends Error {
  constructor(message) {
    super(message);
    this.name = 'UnstubbedRequest';
  }
}

/**
 * What `fetch` rejects with on the host when a request gets no response: StarlingMonkey (the
 * engine of componentize-js 0.22) turns every `wasi:http` error-code, `HTTP-request-denied`
 * included, into this `TypeError`, which does not say which it was; the invocation's log does.
 */
function networkError() {
  return new TypeError('NetworkError when attempting to fetch resource');
}

/** The `wasi:http` error-codes a stub may fail with (see `Http.stub`). */
export const FAILURES = [
  'HTTP-request-denied',
  'DNS-timeout',
  'DNS-error',
  'destination-not-found',
  'destination-unavailable',
  'destination-IP-prohibited',
  'connection-refused',
  'connection-terminated',
  'connection-timeout',
  'connection-read-timeout',
  'TLS-certificate-error',
  'HTTP-response-incomplete',
  'HTTP-response-body-size',
  'HTTP-response-timeout',
  'HTTP-protocol-error',
  'internal-error',
];

/**
 * The HTTP world of a run: which URLs answer what. Each method returns `this`:
 *
 *   new Http()
 *     .stub('https://api.example.com/orders/1', { json: { id: 1 } })
 *     .stubPrefix('https://api.example.com/', { status: 404 })
 *     .stubPrefix('https://flaky.example.com/', { error: 'connection-refused' })
 *     .stubPrefix('https://evil.example.com/', { error: 'HTTP-request-denied' });
 *
 * A request takes the stub of its exact URL, else the one with the longest matching prefix.
 */
export class Http {
  #stubs = [];

  /**
   * Answers requests to exactly `url` with a response: `status` (200), `headers` (an object or
   * pairs), `body` (text or bytes) or `json` (a value, with `content-type: application/json`);
   * or fails them as the host's `fetch` does for `error`, a `wasi:http` error-code (one of
   * `FAILURES`: `'connection-refused'`, `'HTTP-request-denied'`, ...): whichever it is, the
   * host's `fetch` rejects with a `TypeError` ("NetworkError when attempting to fetch resource").
   */
  stub(url, response = {}) {
    return this.#add(url, false, response);
  }

  /** Like `stub`, for every URL that starts with `prefix`. */
  stubPrefix(prefix, response = {}) {
    return this.#add(prefix, true, response);
  }

  #add(url, prefix, { status = 200, headers = {}, body, json, error } = {}) {
    if (error !== undefined && !FAILURES.includes(error)) {
      throw new RangeError(`unknown error ${JSON.stringify(error)}; one of: ${FAILURES.join(', ')}`);
    }
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      throw new RangeError(`a stubbed status is 200 to 599, not ${status}`);
    }
    const fields = new Headers(Array.isArray(headers) ? headers : Object.entries(headers));
    let content = body;
    if (json !== undefined) {
      content = JSON.stringify(json);
      if (!fields.has('content-type')) fields.set('content-type', 'application/json');
    }
    this.#stubs.push({ url, prefix, status, headers: [...fields], body: content, error });
    return this;
  }

  /** The stub that answers `url`, or `undefined`. */
  find(url) {
    const exact = this.#stubs.findLast((s) => !s.prefix && s.url === url);
    if (exact) return exact;
    return this.#stubs
      .filter((s) => s.prefix && url.startsWith(s.url))
      .reduce((best, s) => (best && best.url.length >= s.url.length ? best : s), undefined);
  }

  /** The stubbed URLs, for error messages. */
  describe() {
    if (this.#stubs.length === 0) return 'no URL is stubbed';
    return `stubbed: ${this.#stubs.map((s) => s.url + (s.prefix ? '*' : '')).join(', ')}`;
  }
}

/** What happened in a run; see `run`. */
export class Report {
  constructor(ids, failures, error, exception, recorded) {
    this.ids = ids;
    /** The marked messages, `{ id, retry }` or `{ id, deadLetter }` (none if the batch failed). */
    this.failures = failures;
    /** The reason the batch failed as a whole, as the host records it; `undefined` if it did not. */
    this.error = error;
    /** The thrown value that failed the batch, if any. */
    this.exception = exception;
    /** Every message sent, in order, whether or not the host would commit them. */
    this.sent = recorded.sent;
    /** Every publication, in order, whether or not the host would commit them. */
    this.published = recorded.published;
    /** Every reply, in order, whether or not the host would commit them. */
    this.replies = recorded.replies;
    /** Every `fetch`, in order, whatever the outcome (HTTP is not undone when a batch fails). */
    this.requests = recorded.requests;
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
  /** The publications the host would commit: all if the handler returned, else none. */
  get committedPublications() {
    return this.ok ? this.published : [];
  }
  /** The replies the host would commit: those to acknowledged messages, if the handler returned. */
  get committedReplies() {
    const acked = new Set(this.acked);
    return this.replies.filter((r) => acked.has(r.messageId));
  }
  /** The reply to message `id`, if the handler made one (committed or not). */
  replyTo(id) {
    return this.replies.find((r) => r.messageId === id);
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
 * Runs `handler` on one batch of `messages` and reports what happened: a `Report`, or a Promise
 * of one if the handler is `async`. With `queues` (`topics`), only those queues (topics) exist:
 * a send (publication) to any other throws, as it does on the host. With `env` (an object),
 * `env(name)` reads only it. With `http` (an `Http`), the global `fetch` answers from its stubs;
 * without it, any `fetch` fails the test. A thrown value (or rejection) is caught and reported
 * as the host reports it; an `UnstubbedRequest` is thrown (or rejects).
 *
 * The outbox, `env` and `fetch` are globals replaced for the duration of the run: run handlers
 * one at a time (as `node --test` runs the tests of a file, unless told otherwise).
 */
export function run(handler, messages, { queues, topics, env, http, kv } = {}) {
  const batch = [...messages].map((m, i) => (m instanceof Message ? m : build(m, i + 1)));
  const ids = batch.map((m) => m.id);
  const recorded = { sent: [], published: [], replies: [], requests: [], unstubbed: undefined };
  const buckets = new KvRun(kv ?? new Kv());
  const restore = install(recorder(ids, queues, topics, recorded), env, stubbedFetch(http ?? new Http(), recorded), buckets);

  const finish = (failures, error, exception) => {
    restore();
    if (error === undefined) buckets.commit();
    if (recorded.unstubbed) throw recorded.unstubbed;
    return new Report(ids, failures, error, exception, recorded);
  };
  let returned;
  try {
    returned = handler(batch);
  } catch (thrown) {
    return finish([], reasonOf(thrown), thrown);
  }
  if (!isThenable(returned)) return outcome(returned, finish);
  return Promise.resolve(returned).then(
    (resolved) => outcome(resolved, finish),
    (thrown) => finish([], reasonOf(thrown), thrown),
  );
}

function outcome(returned, finish) {
  let failures;
  try {
    failures = failuresOf(returned);
  } catch (thrown) {
    return finish([], reasonOf(thrown), thrown);
  }
  return finish(failures, undefined, undefined);
}

function install(outbox, env, fetch, buckets) {
  const previous = [globalThis[OUTBOX], globalThis[ENV], globalThis.fetch, globalThis[KV]];
  globalThis[OUTBOX] = outbox;
  if (env) globalThis[ENV] = (name) => (Object.hasOwn(env, name) ? String(env[name]) : undefined);
  globalThis.fetch = fetch;
  globalThis[KV] = buckets;
  return () => {
    [globalThis[OUTBOX], globalThis[ENV], globalThis.fetch, globalThis[KV]] = previous;
  };
}

/**
 * In-memory key-value buckets for `run` (`kv`): what the handler writes is committed to them
 * only if it returns, as the host commits state with the acknowledgement. Give the buckets the
 * function's version lists: names (empty buckets), or an object of buckets of keys to values.
 */
export class Kv {
  constructor(buckets = []) {
    /** Bucket name → Map of key → committed value (Uint8Array). */
    this.buckets = new Map();
    const entries = Array.isArray(buckets) ? buckets.map((name) => [name, {}]) : Object.entries(buckets);
    for (const [name, keys] of entries) {
      this.buckets.set(name, new Map(Object.entries(keys).map(([k, v]) => [k, toBytes(v)])));
    }
  }
  /** The committed value of `key` in `bucket` (a Uint8Array), or `undefined`. */
  get(bucket, key) {
    return this.buckets.get(bucket)?.get(key);
  }
  /** The committed value of `key` in `bucket` as text, or `undefined`. */
  getText(bucket, key) {
    const value = this.get(bucket, key);
    return value === undefined ? undefined : decoder.decode(value);
  }
}

/** One run's view of a `Kv`: its own writes over the committed state. */
class KvRun {
  constructor(kv) {
    this.kv = kv;
    /** `bucket\0key` → new value, or `null` for a delete; in write order. */
    this.pending = new Map();
  }
  open(name) {
    if (!this.kv.buckets.has(name)) {
      const listed = [...this.kv.buckets.keys()].sort().join(', ') || 'none';
      throw new SluiceError(`bucket \`${name}\` is not among the function's kv_buckets (${listed}); list it in new Kv([...])`);
    }
    const read = (key) => {
      const pending = this.pending.get(`${name}\0${key}`);
      if (pending !== undefined) return pending ?? undefined;
      return this.kv.buckets.get(name).get(key);
    };
    return {
      get: read,
      set: (key, value) => {
        if (encoder.encode(key).length > 1024) throw new SluiceError('a key is at most 1 KiB');
        if (value.length > 1024 * 1024) throw new SluiceError('a value is at most 1 MiB');
        this.pending.set(`${name}\0${key}`, value);
      },
      delete: (key) => this.pending.set(`${name}\0${key}`, null),
      exists: (key) => read(key) !== undefined,
      keys: () => {
        const keys = new Set(this.kv.buckets.get(name).keys());
        for (const [id, value] of this.pending) {
          const [bucket, key] = id.split('\0');
          if (bucket !== name) continue;
          if (value === null) keys.delete(key);
          else keys.add(key);
        }
        return [...keys].sort((a, b) => Buffer.compare(encoder.encode(a), encoder.encode(b)));
      },
      increment: (key, delta) => {
        const current = read(key);
        const number = current === undefined ? 0 : Number(decoder.decode(current));
        if (!Number.isInteger(number)) throw new SluiceError(`key \`${key}\` of bucket \`${name}\` does not hold a number`);
        const value = number + delta;
        this.pending.set(`${name}\0${key}`, encoder.encode(String(value)));
        return value;
      },
    };
  }
  commit() {
    for (const [id, value] of this.pending) {
      const [bucket, key] = id.split('\0');
      if (value === null) this.kv.buckets.get(bucket).delete(key);
      else this.kv.buckets.get(bucket).set(key, value);
    }
  }
}

function toBytes(value) {
  return typeof value === 'string' ? encoder.encode(value) : value;
}

/** The outbox of a run, with the host's checks. */
function recorder(ids, queues, topics, recorded) {
  const knownQueues = queues ? new Set(queues) : undefined;
  const knownTopics = topics ? new Set(topics) : undefined;
  const batchIds = new Set(ids);
  return {
    send(outgoing) {
      const { queue, priority, group } = outgoing;
      if (priority !== undefined && priority > MAX_PRIORITY) {
        throw new SluiceError(
          `invalid message: priority ${priority} is out of range; give 0 (lowest) to ${MAX_PRIORITY} (highest), or leave it out for ${DEFAULT_PRIORITY}`,
        );
      }
      if (group !== undefined) {
        const size = encoder.encode(group).length;
        if (size < 1 || size > MAX_GROUP_BYTES) {
          throw new SluiceError(`invalid message: a group key must be 1 to ${MAX_GROUP_BYTES} bytes, not ${size}`);
        }
        // Rust's `char::is_control`, which the host uses: the Unicode category Cc.
        if (/\p{Cc}/u.test(group)) {
          throw new SluiceError('invalid message: a group key must not contain control characters');
        }
      }
      if (knownQueues && !knownQueues.has(queue)) throw new SluiceError(`queue \`${queue}\` does not exist`);
      recorded.sent.push(new SentMessage(outgoing));
    },
    publish(topic, body, attributes) {
      if (knownTopics && !knownTopics.has(topic)) throw new SluiceError(`topic \`${topic}\` does not exist`);
      recorded.published.push(new PublishedMessage(topic, body, attributes));
    },
    reply(messageId, body, attributes) {
      if (recorded.replies.some((r) => r.messageId === messageId)) {
        throw new SluiceError(
          `message \`${messageId}\` already has a reply in this invocation; a message gets at most one`,
        );
      }
      if (!batchIds.has(messageId)) {
        throw new SluiceError(
          `message \`${messageId}\` is not in this batch; reply to a message of the batch being handled`,
        );
      }
      recorded.replies.push(new ReplyMessage(messageId, body, attributes));
    },
  };
}

/**
 * A `fetch` that records each request (at once, so that a request is recorded even when a
 * synchronous handler does not await it) and answers it from `http`'s stubs.
 */
function stubbedFetch(http, recorded) {
  return function fetch(input, init) {
    let request;
    try {
      request = new Request(input, init);
    } catch (error) {
      return Promise.reject(error);
    }
    const sent = new SentRequest(request.method, request.url, new Headers(request.headers), new Uint8Array());
    recorded.requests.push(sent);
    const stub = http.find(request.url);
    if (!stub) {
      recorded.unstubbed ??= new UnstubbedRequest(
        `${request.method} ${request.url} is not stubbed (${http.describe()}); stub it: ` +
          `new Http().stub(${JSON.stringify(request.url)}, { status: 200 }) or .stubPrefix(...)`,
      );
      return Promise.reject(recorded.unstubbed);
    }
    return request.arrayBuffer().then((buffer) => {
      sent.body = new Uint8Array(buffer);
      if (stub.error) throw networkError();
      // Responses to these statuses have no body (the Response constructor refuses one).
      const empty = [204, 205, 304].includes(stub.status) || request.method === 'HEAD';
      const response = new Response(empty ? null : stub.body, { status: stub.status, headers: stub.headers });
      // Redirects are not followed, so the response's URL is the one requested.
      Object.defineProperty(response, 'url', { value: request.url });
      return response;
    });
  };
}
