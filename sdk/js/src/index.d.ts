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

/** A handler: called once per batch, in a fresh instance; `undefined` acknowledges everything. */
export type Handler = (batch: Message[]) => Outcome | void;

/** A message to another queue: `new Outgoing('audit').json(v).attribute('k', 'v').send()`. */
export class Outgoing {
  constructor(queue: string);
  readonly queue: string;
  /** Sets the body: bytes, or text sent as UTF-8. */
  setBody(body: Body): this;
  /** Sets the body to `value` as JSON. */
  json(value: unknown): this;
  /** Adds an attribute. */
  attribute(name: string, value: string): this;
  /** Keeps the message invisible for `delayMs` after it is committed. */
  delay(delayMs: number): this;
  /** Hands the message to the host's outbox; throws a `SluiceError` if the host refuses it. */
  send(): void;
}

export interface SendOptions {
  attributes?: Array<[string, string]>;
  delayMs?: number;
}

/** Sends `body` to `queue`; committed only if the handler returns. */
export function send(queue: string, body: Body, options?: SendOptions): void;
/** Sends `value` serialized as JSON to `queue`. */
export function sendJson(queue: string, value: unknown, options?: SendOptions): void;

/**
 * The value of the function's environment variable `name` (set with `env=NAME=VALUE` when it is
 * deployed), or `undefined`. Natively: `process.env`, or the `env` option of the test harness.
 */
export function env(name: string): string | undefined;
