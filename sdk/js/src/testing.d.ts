import { Failure, Handler, Message } from './index.js';

/** A message to put in a test batch. */
export interface TestMessage {
  body: Uint8Array;
  id?: string;
  queue: string;
  attributes: Array<[string, string]>;
  attempt: number;
  enqueuedAtMs?: number;
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
}

/** A test message with this body (text is encoded as UTF-8). */
export function message(body: string | Uint8Array, options?: MessageOptions): TestMessage;
/** A test message whose body is `value` as JSON. */
export function jsonMessage(value: unknown, options?: MessageOptions): TestMessage;
/** The `Message` a handler would receive for `spec` at 1-based `position`. */
export function build(spec: TestMessage, position?: number): Message;

/** A message the handler sent during a run. */
export class SentMessage {
  readonly queue: string;
  readonly body: Uint8Array;
  readonly attributes: Array<[string, string]>;
  readonly delayMs: number;
  text(): string;
  json<T = unknown>(): T;
  attribute(name: string): string | undefined;
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
  /** Whether the handler returned (some messages may still have failed). */
  readonly ok: boolean;
  /** The ids of the acknowledged messages, in batch order. */
  readonly acked: string[];
  /** What the host would commit: everything sent if the handler returned, else nothing. */
  readonly committed: SentMessage[];
  /** What the handler asked for message `id`, or `undefined` if it was acknowledged. */
  disposition(id: string): { retry: number | null } | { deadLetter: string } | undefined;
}

/**
 * Runs `handler` on one batch. With `queues`, a send to any other queue throws, as on the host;
 * with `env`, `env(name)` reads only these variables.
 */
export function run(
  handler: Handler,
  messages: Iterable<TestMessage | Message>,
  options?: { queues?: Iterable<string>; env?: Record<string, string> },
): Report;
