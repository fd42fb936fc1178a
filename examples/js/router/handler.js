// The first link of a chain: parses each message as a JSON order
// (`{"id": "o-1", "kind": "book", "amount": 12.5}`) and forwards it, body unchanged, to a queue
// chosen by its kind. Messages that are not valid orders are dead-lettered with the reason.
// The JavaScript twin of examples/router.
//
// Queues, from the function's environment: ROUTE_BOOK (default `orders-books`), ROUTE_MUSIC
// (`orders-music`) and ROUTE_OTHER (`orders-other`, for every other kind). A send that fails (a
// queue that does not exist) fails the batch, so nothing is lost: it is retried whole.

import { Outcome, Outgoing, env } from 'sluice-sdk';

/** @param {import('sluice-sdk').Message[]} batch */
export function handle(batch) {
  const routes = new Routes(env);
  const outcome = new Outcome();
  for (const msg of batch) {
    let order;
    try {
      order = parseOrder(msg.json());
    } catch (error) {
      outcome.deadLetter(msg, error);
      continue;
    }
    const outgoing = new Outgoing(routes.queueFor(order.kind)).setBody(msg.body);
    for (const [name, value] of msg.attributes) outgoing.attribute(name, value);
    outgoing.attribute('order-id', order.id).attribute('kind', order.kind).send();
  }
  return outcome;
}

/**
 * The order, checked: `id` and `kind` strings and a numeric `amount` are required, so malformed
 * orders are dead-lettered here, at the start of the chain.
 */
export function parseOrder(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('an order is a JSON object');
  }
  for (const [field, type] of [['id', 'string'], ['kind', 'string'], ['amount', 'number']]) {
    if (!(field in value)) throw new Error(`missing field \`${field}\``);
    if (typeof value[field] !== type) throw new Error(`field \`${field}\` has the wrong type`);
  }
  return value;
}

/** Destination queue per kind of order, read through `lookup` (the environment) with defaults. */
export class Routes {
  constructor(lookup) {
    this.book = lookup('ROUTE_BOOK') ?? 'orders-books';
    this.music = lookup('ROUTE_MUSIC') ?? 'orders-music';
    this.other = lookup('ROUTE_OTHER') ?? 'orders-other';
  }

  queueFor(kind) {
    return kind === 'book' ? this.book : kind === 'music' ? this.music : this.other;
  }
}
