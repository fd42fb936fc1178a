// Counts messages per customer, effectively once: each message increments
// `count:<customer attribute>` in bucket `counts` and remembers its id under `seen:<id>` in
// bucket `seen`. The writes commit with the batch's acknowledgement, so a retried batch never
// counts twice. A message without a `customer` attribute is dead-lettered, saying why.
//
//   sluice kv create counts
//   sluice kv create seen --ttl 1h
//   scripts/build-js examples/js/counter/handler.js -o counter.wasm
//   sluice deploy counter.wasm --name counter --queue orders --kv counts --kv seen

import { Outcome, kv } from 'sluice-sdk';

export function handle(batch) {
  const outcome = new Outcome();
  const counts = kv.open('counts');
  const seen = kv.open('seen');
  for (const msg of batch) {
    const customer = msg.attribute('customer');
    if (customer === undefined) {
      outcome.deadLetter(msg, 'no `customer` attribute: send it with --attr customer=NAME');
      continue;
    }
    counts.increment(`count:${customer}`);
    seen.set(`seen:${msg.id}`, '1');
  }
  return outcome;
}
