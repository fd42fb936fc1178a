import { Failure, Handler, Message, Outcome } from './index.js';

/** A message to put in a test batch. */
export interface TestMessage {
  body: Uint8Array;
  id?: string;
  queue: string;
  attributes: Array<[string, string]>;
  attempt: number;
  enqueuedAtMs?: number;
  priority: number;
  group?: string;
}

export interface MessageOptions {
  /** Default `msg-N`, the message's 1-based position in the batch. */
  id?: string;
  /** Default "test". */
  queue?: string;
  attributes?: Record<string, string> | Array<[string, string]>;
  /** Default 1. */
  attempt?: number;
  /** Default now. */
  enqueuedAtMs?: number;
  /** Default 4. */
  priority?: number;
  /** Default none. */
  group?: string;
}

/** A test message with this body (text is encoded as UTF-8). */
export function message(body: string | Uint8Array, options?: MessageOptions): TestMessage;
/** A test message whose body is `value` as JSON. */
export function jsonMessage(value: unknown, options?: MessageOptions): TestMessage;
/** The `Message` a handler would receive for `spec` at 1-based `position`. */
export function build(spec: TestMessage, position?: number): Message;

/** What recorded messages share. */
interface Recorded {
  readonly body: Uint8Array;
  readonly attributes: Array<[string, string]>;
  text(): string;
  json<T = unknown>(): T;
  attribute(name: string): string | undefined;
}

/** A message the handler sent during a run. */
export class SentMessage implements Recorded {
  readonly queue: string;
  readonly body: Uint8Array;
  readonly attributes: Array<[string, string]>;
  readonly delayMs: number;
  /** As given to the send: `undefined` means the queue's default (4). */
  readonly priority: number | undefined;
  readonly group: string | undefined;
  text(): string;
  json<T = unknown>(): T;
  attribute(name: string): string | undefined;
}

/** A message the handler published to a topic during a run. */
export class PublishedMessage implements Recorded {
  readonly topic: string;
  readonly body: Uint8Array;
  readonly attributes: Array<[string, string]>;
  text(): string;
  json<T = unknown>(): T;
  attribute(name: string): string | undefined;
}

/** A reply the handler made during a run. */
export class ReplyMessage implements Recorded {
  readonly messageId: string;
  readonly body: Uint8Array;
  readonly attributes: Array<[string, string]>;
  text(): string;
  json<T = unknown>(): T;
  attribute(name: string): string | undefined;
}

/** An HTTP request the handler made with `fetch` during a run (stubbed or not). */
export class SentRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
  /** The body's bytes (empty without one). */
  readonly body: Uint8Array;
  /** The value of header `name` (any case), or `undefined`. */
  header(name: string): string | undefined;
  text(): string;
  json<T = unknown>(): T;
}

/** A `fetch` of a URL no stub answers; `run` throws (or rejects with) it, failing the test. */
export class UnstubbedRequest extends Error {}

/**
 * The `wasi:http` error-codes a stub may fail with. On the host, `fetch` does not say which one
 * it was: it rejects with a `TypeError` ("NetworkError when attempting to fetch resource") for
 * every one, `HTTP-request-denied` included, and so do the stubs. The invocation's log names it.
 */
export type FetchFailure =
  | 'HTTP-request-denied'
  | 'DNS-timeout'
  | 'DNS-error'
  | 'destination-not-found'
  | 'destination-unavailable'
  | 'destination-IP-prohibited'
  | 'connection-refused'
  | 'connection-terminated'
  | 'connection-timeout'
  | 'connection-read-timeout'
  | 'TLS-certificate-error'
  | 'HTTP-response-incomplete'
  | 'HTTP-response-body-size'
  | 'HTTP-response-timeout'
  | 'HTTP-protocol-error'
  | 'internal-error';
export const FAILURES: FetchFailure[];

/** A stubbed answer: a response, or a failure. */
export interface StubResponse {
  /** 200 to 599; default 200. */
  status?: number;
  headers?: Record<string, string> | Array<[string, string]>;
  /** Text or bytes. */
  body?: string | Uint8Array;
  /** A value sent as JSON, with `content-type: application/json` unless `headers` has one. */
  json?: unknown;
  /** Fail the request as the host's `fetch` does for this `wasi:http` error-code. */
  error?: FetchFailure;
}

/**
 * The HTTP world of a run: which URLs answer what. A request takes the stub of its exact URL,
 * else the one with the longest matching prefix; anything else fails the test.
 */
/**
 * In-memory key-value buckets for `run`: what the handler writes is committed to them only if
 * it returns. Give bucket names (empty buckets), or an object of buckets of keys to values.
 */
export class Kv {
  constructor(buckets?: string[] | Record<string, Record<string, string | Uint8Array>>);
  /** Bucket name → key → committed value. */
  readonly buckets: Map<string, Map<string, Uint8Array>>;
  /** The committed value of `key` in `bucket`, or `undefined`. */
  get(bucket: string, key: string): Uint8Array | undefined;
  /** The committed value of `key` in `bucket` as text, or `undefined`. */
  getText(bucket: string, key: string): string | undefined;
}

export class Http {
  /** Answers requests to exactly `url`. */
  stub(url: string, response?: StubResponse): this;
  /** Answers requests to every URL that starts with `prefix`. */
  stubPrefix(prefix: string, response?: StubResponse): this;
}

/** What happened in a run. */
export class Report {
  readonly ids: string[];
  /** The marked messages (none if the batch failed as a whole). */
  readonly failures: Failure[];
  /** The reason the batch failed as a whole, as the host records it. */
  readonly error: string | undefined;
  /** The thrown value that failed the batch, if any. */
  readonly exception: unknown;
  /** Every message sent, whether or not the host would commit them. */
  readonly sent: SentMessage[];
  /** Every publication, whether or not the host would commit them. */
  readonly published: PublishedMessage[];
  /** Every reply, whether or not the host would commit them. */
  readonly replies: ReplyMessage[];
  /** Every `fetch`, in order, whatever the outcome. */
  readonly requests: SentRequest[];
  /** Whether the handler returned (some messages may still have failed). */
  readonly ok: boolean;
  /** The ids of the acknowledged messages, in batch order. */
  readonly acked: string[];
  /** What the host would commit: everything sent if the handler returned, else nothing. */
  readonly committed: SentMessage[];
  /** The publications the host would commit. */
  readonly committedPublications: PublishedMessage[];
  /** The replies the host would commit: those to acknowledged messages. */
  readonly committedReplies: ReplyMessage[];
  /** The reply to message `id`, if the handler made one. */
  replyTo(id: string): ReplyMessage | undefined;
  /** What the handler asked for message `id`, or `undefined` if it was acknowledged. */
  disposition(id: string): { retry: number | null } | { deadLetter: string } | undefined;
}

export interface RunOptions {
  /** Only these queues exist: a send to any other throws, as on the host. */
  queues?: Iterable<string>;
  /** Only these topics exist: a publication to any other throws, as on the host. */
  topics?: Iterable<string>;
  /** `env(name)` reads only these variables. */
  env?: Record<string, string>;
  /** What `fetch` answers; without it, any `fetch` fails the test. */
  http?: Http;
  /** The buckets the handler may open; its writes are committed to them only if it returns. */
  kv?: Kv;
}

/**
 * Runs `handler` on one batch: a `Report`, or a Promise of one for an `async` handler. Throws
 * (or rejects with) an `UnstubbedRequest` if the handler fetched a URL no stub answers.
 */
export function run(
  handler: (batch: Message[]) => Promise<Outcome | void>,
  messages: Iterable<TestMessage | Message>,
  options?: RunOptions,
): Promise<Report>;
export function run(
  handler: (batch: Message[]) => Outcome | void,
  messages: Iterable<TestMessage | Message>,
  options?: RunOptions,
): Report;
export function run(handler: Handler, messages: Iterable<TestMessage | Message>, options?: RunOptions): Report | Promise<Report>;
