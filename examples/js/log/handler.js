// Prints every message of the batch to stdout (captured by the host as the invocation's log)
// and acknowledges them all. The JavaScript twin of examples/log.
//
// A message whose `fail` attribute is set fails the whole batch by throwing an Error with that
// text, to show that the message reaches the invocation's log and reason.

/** @param {import('sluice-sdk').Message[]} batch */
export function handle(batch) {
  for (const msg of batch) {
    console.log(describe(msg));
    const fail = msg.attribute('fail');
    if (fail !== undefined) throw new Error(fail);
  }
}

/** One log line: id, queue, attempt, attributes and the body as text (lossily, for binary). */
export function describe(msg) {
  const attributes = msg.attributes.map(([k, v]) => `${k}=${v}`).join(', ');
  const body = new TextDecoder().decode(msg.body);
  return `message ${msg.id} from ${msg.queue} (attempt ${msg.attempt}) [${attributes}]: ${body}`;
}
