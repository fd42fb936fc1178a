// The AWS SDK for JavaScript v3 against the SQS endpoint: @aws-sdk/client-sqs 3.441.0 (query
// protocol, XML answers: before Sluice kept empty results' Result element it threw a
// TypeError on an empty receive) and a current release (JSON protocol). Each does an empty
// list, an empty receive, empty attributes and a round trip whose MD5s the SDK checks.
// Environment: SQS_ENDPOINT, KEY_ID, SECRET (set by tests/e2e/sqs.rs).
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const clients = {
  "3.441.0": require("client-sqs-3441"),
  current: require("@aws-sdk/client-sqs"),
};

for (const [version, sdk] of Object.entries(clients)) {
  const sqs = new sdk.SQSClient({
    endpoint: process.env.SQS_ENDPOINT,
    region: "us-east-1",
    credentials: { accessKeyId: process.env.KEY_ID, secretAccessKey: process.env.SECRET },
  });
  const tag = version.replace(/\W/g, "-");
  const listed = await sqs.send(new sdk.ListQueuesCommand({ QueueNamePrefix: `js-${tag}` }));
  assert.equal(listed.QueueUrls, undefined, version);
  const { QueueUrl } = await sqs.send(new sdk.CreateQueueCommand({ QueueName: `js-${tag}` }));
  const empty = await sqs.send(new sdk.ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 0 }));
  assert.equal(empty.Messages, undefined, version);
  const attrs = await sqs.send(
    new sdk.GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["RedrivePolicy"] }),
  );
  assert.equal(attrs.Attributes, undefined, version);
  await sqs.send(
    new sdk.SendMessageCommand({
      QueueUrl,
      MessageBody: "from javascript ✓",
      MessageAttributes: { kind: { DataType: "String", StringValue: "js" } },
    }),
  );
  const got = await sqs.send(
    new sdk.ReceiveMessageCommand({
      QueueUrl,
      WaitTimeSeconds: 5,
      MessageAttributeNames: ["All"],
    }),
  );
  assert.equal(got.Messages.length, 1, version);
  assert.equal(got.Messages[0].Body, "from javascript ✓", version);
  assert.equal(got.Messages[0].MessageAttributes.kind.StringValue, "js", version);
  await sqs.send(
    new sdk.DeleteMessageCommand({ QueueUrl, ReceiptHandle: got.Messages[0].ReceiptHandle }),
  );
  await sqs.send(new sdk.DeleteQueueCommand({ QueueUrl }));
  console.log(`client-sqs ${version} ok`);
}
console.log("js ok");
