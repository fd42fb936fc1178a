/** Raise to fail the whole batch with this message (any thrown value does the same). */
export class SluiceError extends Error {
  constructor(message: string);
}

/** Bytes, or text sent as UTF-8. */
export type Body = string | Uint8Array | ArrayBuffer | ArrayBufferView;

/** One message delivered to a handler. */
export class Message {
  /** Unique within the host and stable across redeliveries. */
  readonly id: string;
  /** The queue the message was leased from. */
  readonly queue: string;
  /** The raw body, exactly as the producer sent it. */
  readonly body: Uint8Array;
  /** `[name, value]` pairs, in the order the producer gave them. */
  readonly attributes: Array<[string, string]>;
  /** How many times it has been delivered, this delivery included (1 on the first). */
  readonly attempt: number;
  /** When the producer's enqueue was committed, in milliseconds since the Unix epoch. */
  readonly enqueuedAtMs: number;
  /** 0 (lowest) to 9 (highest); 4 unless the producer gave one. A batch takes higher priorities first. */
  readonly priority: number;
  /** The ordered group the message belongs to, if any: a group's messages are delivered one at a time, in order. */
  readonly group: string | undefined;
  /** The body as text; throws a `SluiceError` if it is not UTF-8. */
  text(): string;
  /** The body parsed as JSON; throws a `SluiceError` saying why if it does not parse. */
  json<T = unknown>(): T;
  /** The value of the first attribute called `name`, or `undefined`. */
  attribute(name: string): string | undefined;
}

/** What to do with a failed message: retry (after `retry` ms, or the queue's backoff when null), or dead-letter. */
export type Failure =
  | { id: string; retry: number | null; deadLetter?: undefined }
  | { id: string; deadLetter: string; retry?: undefined };

/**
 * What a handler returns for a batch that did not fail as a whole: every message not marked is
 * acknowledged. Marking a message again replaces its disposition.
 */
export class Outcome {
  /** Retry `msg` (a `Message` or an id) after `delayMs`, or after the queue's backoff. */
  retry(msg: Message | string, options?: { delayMs?: number }): this;
  /** Dead-letter `msg` with `reason` (an Error's message, or the value as text). */
  deadLetter(msg: Message | string, reason: unknown): this;
  /** The marked messages, in the order first marked. */
  readonly failures: Failure[];
}

/**
 * A handler: called once per batch, in a fresh instance; `undefined` acknowledges everything.
 * It may be `async` (to `await fetch(...)`): the batch settles when its Promise does, and a
 * rejection fails the batch like a throw.
 */
export type Handler = (batch: Message[]) => Outcome | void | Promise<Outcome | void>;

/**
 * A message to another queue:
 * `new Outgoing('emails').json(v).attribute('k', 'v').delay(60_000).setPriority(7).setGroup('ada').send()`.
 */
export class Outgoing {
  constructor(queue: string);
  readonly queue: string;
  /** 0 (lowest) to 9 (highest), or `undefined` for the default (4). */
  readonly priority: number | undefined;
  /** The ordered group to deliver it in, or `undefined`. */
  readonly group: string | undefined;
  /** Sets the body: bytes, or text sent as UTF-8. */
  setBody(body: Body): this;
  /** Sets the body to `value` as JSON. */
  json(value: unknown): this;
  /** Adds an attribute. */
  attribute(name: string, value: string): this;
  /** Keeps the message invisible for `delayMs` after it is committed. */
  delay(delayMs: number): this;
  /** Sets the priority: 0 (lowest) to 9 (highest); the host refuses anything else. */
  setPriority(priority: number): this;
  /** Puts the message in an ordered group (1 to 128 bytes, no control characters), delivered one at a time, in order. */
  setGroup(group: string): this;
  /** Hands the message to the host's outbox; throws a `SluiceError` if the host refuses it. */
  send(): void;
}

export interface SendOptions {
  attributes?: Array<[string, string]>;
  delayMs?: number;
  /** 0 (lowest) to 9 (highest); the queue's default (4) when left out. */
  priority?: number;
  /** The ordered group to deliver it in. */
  group?: string;
}

/** Sends `body` to `queue`; committed only if the handler returns. */
export function send(queue: string, body: Body, options?: SendOptions): void;
/** Sends `value` serialized as JSON to `queue`. */
export function sendJson(queue: string, value: unknown, options?: SendOptions): void;

/**
 * A message to publish to a topic: when the batch is acknowledged, a copy goes to every
 * subscription of the topic whose filter matches its attributes.
 */
export class Publication {
  constructor(topic: string);
  readonly topic: string;
  /** Sets the body: bytes, or text sent as UTF-8. */
  setBody(body: Body): this;
  /** Sets the body to `value` as JSON. */
  json(value: unknown): this;
  /** Adds an attribute (subscription filters match on them). */
  attribute(name: string, value: string): this;
  /** Hands the publication to the host's outbox; throws a `SluiceError` if the host refuses it. */
  publish(): void;
}

export interface PublishOptions {
  attributes?: Array<[string, string]>;
}

/** Publishes `body` to `topic`; committed only if the handler returns. */
export function publish(topic: string, body: Body, options?: PublishOptions): void;
/** Publishes `value` serialized as JSON to `topic`. */
export function publishJson(topic: string, value: unknown, options?: PublishOptions): void;

/**
 * The answer to one message of the batch, for the producer waiting on it; committed only with
 * the acknowledgement of that message.
 */
export class Reply {
  constructor(messageId: string);
  /** A reply to `message` (a `Message` of the batch, or its id). */
  static to(message: Message | string): Reply;
  readonly messageId: string;
  /** Sets the body: bytes, or text sent as UTF-8. */
  setBody(body: Body): this;
  /** Sets the body to `value` as JSON. */
  json(value: unknown): this;
  /** Adds an attribute; the waiting producer gets it with the reply. */
  attribute(name: string, value: string): this;
  /** Hands the reply to the host's outbox; throws a `SluiceError` if the host refuses it. */
  send(): void;
}

/** Replies `body` to `message` (a `Message` of the batch, or its id). */
export function reply(message: Message | string, body: Body, options?: PublishOptions): void;
/** Replies `value`, serialized as JSON, to `message`. */
export function replyJson(message: Message | string, value: unknown, options?: PublishOptions): void;

/**
 * The value of the function's environment variable `name` (set with `env=NAME=VALUE` when it is
 * deployed), or `undefined`. Natively: `process.env`, or the `env` option of the test harness.
 */
export function env(name: string): string | undefined;

/**
 * Key-value state committed with the acknowledgement (the standard `wasi:keyvalue`): a handler
 * opens the buckets its function's version lists in `kv_buckets`; its writes commit only if it
 * returns, its reads see its own writes first, and `increment` adds its delta at commit.
 */
export const kv: {
  /** Opens bucket `name`; throws a `SluiceError` if the function's version does not list it. */
  open(name: string): Bucket;
};

/** An open bucket: keys are strings (up to 1 KiB), values bytes (up to 1 MiB). */
export class Bucket {
  readonly name: string;
  /** The value of `key`, or `undefined` when it has none. */
  get(key: string): Uint8Array | undefined;
  /** The value of `key` as text (UTF-8), or `undefined`. */
  getText(key: string): string | undefined;
  /** The value of `key` parsed as JSON, or `undefined`. */
  getJson(key: string): unknown;
  /** Sets `key` to `value` (a string is stored as UTF-8). */
  set(key: string, value: string | Uint8Array): void;
  /** Sets `key` to `value` as JSON. */
  setJson(key: string, value: unknown): void;
  /** Deletes `key`; nothing happens when it has no value. */
  delete(key: string): void;
  /** Whether `key` has a value. */
  exists(key: string): boolean;
  /** The bucket's keys starting with `prefix`, in byte order. */
  keys(prefix?: string): string[];
  /** Adds `delta` (default 1) to the number at `key` (0 when absent); returns the new value. */
  increment(key: string, delta?: number): number;
}
