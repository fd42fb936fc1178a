// sqs-consumer (on the current @aws-sdk/client-sqs) against the SQS endpoint: 1,000 messages
// through `handleMessageBatch`, none lost and none handled twice, and the queue empty after
// (every batch deleted). Environment: SQS_ENDPOINT, KEY_ID, SECRET.
import assert from "node:assert/strict";
import {
  SQSClient,
  CreateQueueCommand,
  SendMessageBatchCommand,
  GetQueueAttributesCommand,
} from "@aws-sdk/client-sqs";
import { Consumer } from "sqs-consumer";

const TOTAL = 1000;
const DEADLINE_MS = 60_000;
const sqs = new SQSClient({
  endpoint: process.env.SQS_ENDPOINT,
  region: "us-east-1",
  credentials: { accessKeyId: process.env.KEY_ID, secretAccessKey: process.env.SECRET },
});
const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "sqs-consumer" }));
const bodies = Array.from({ length: TOTAL }, (_, i) => `message ${String(i).padStart(4, "0")}`);
for (let i = 0; i < TOTAL; i += 10) {
  const Entries = bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: `e${j}`, MessageBody }));
  const sent = await sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries }));
  assert.equal(sent.Successful.length, Entries.length);
}

const seen = new Map();
const errors = [];
const consumer = Consumer.create({
  queueUrl: QueueUrl,
  sqs,
  batchSize: 10,
  waitTimeSeconds: 1,
  handleMessageBatch: async (messages) => {
    for (const m of messages) seen.set(m.Body, (seen.get(m.Body) ?? 0) + 1);
    return messages;
  },
});
for (const event of ["error", "processing_error", "timeout_error"]) {
  consumer.on(event, (err) => errors.push(`${event}: ${err.message}`));
}

/** Waits for `done()` to hold, checking every 50 ms, failing after the deadline. */
async function until(what, done) {
  const start = Date.now();
  while (!(await done())) {
    assert.ok(Date.now() - start < DEADLINE_MS, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

consumer.start();
await until("every message to be handled", () => seen.size >= TOTAL || errors.length > 0);
const left = async () => {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages) +
    Number(Attributes.ApproximateNumberOfMessagesNotVisible)
  );
};
await until("the queue to be empty", async () => (await left()) === 0 || errors.length > 0);
consumer.stop({ abort: true });
assert.deepEqual(errors, []);
assert.deepEqual([...seen.keys()].sort(), bodies, "every message handled");
const twice = [...seen].filter(([, n]) => n > 1);
assert.deepEqual(twice, [], "no message handled twice");
console.log(`sqs-consumer ok: ${seen.size} messages, none twice`);
