#!/usr/bin/env bash
# The AWS CLI (v1, `aws sqs ...`) as a third client: create, send with attributes, receive,
# delete, attributes, batch, purge and an error, against SQS_ENDPOINT with KEY_ID / SECRET.
set -euo pipefail
export AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_DEFAULT_REGION=us-east-1
aws="$(dirname "$(command -v python)")/aws"
sqs() { "$aws" --endpoint-url "$SQS_ENDPOINT" --output json sqs "$@"; }
field() { python -c "import json,sys; print(json.load(sys.stdin)$1)"; }

url="$(sqs create-queue --queue-name cli-q --attributes VisibilityTimeout=15 | field '["QueueUrl"]')"
[ "$(sqs get-queue-url --queue-name cli-q | field '["QueueUrl"]')" = "$url" ]
sqs send-message --queue-url "$url" --message-body "hello from the cli" \
    --message-attributes '{"kind": {"DataType": "String", "StringValue": "cli"}}' >/dev/null
received="$(sqs receive-message --queue-url "$url" --wait-time-seconds 5 \
    --message-attribute-names All --attribute-names ApproximateReceiveCount)"
[ "$(echo "$received" | field '["Messages"][0]["Body"]')" = "hello from the cli" ]
[ "$(echo "$received" | field '["Messages"][0]["MessageAttributes"]["kind"]["StringValue"]')" = "cli" ]
[ "$(echo "$received" | field '["Messages"][0]["Attributes"]["ApproximateReceiveCount"]')" = "1" ]
handle="$(echo "$received" | field '["Messages"][0]["ReceiptHandle"]')"
sqs delete-message --queue-url "$url" --receipt-handle "$handle"
[ "$(sqs get-queue-attributes --queue-url "$url" --attribute-names All \
    | field '["Attributes"]["VisibilityTimeout"]')" = "15" ]
sent="$(sqs send-message-batch --queue-url "$url" \
    --entries Id=one,MessageBody=first Id=two,MessageBody=second)"
[ "$(echo "$sent" | field '["Successful"].__len__()')" = "2" ]
sqs purge-queue --queue-url "$url"
[ "$(sqs get-queue-attributes --queue-url "$url" --attribute-names ApproximateNumberOfMessages \
    | field '["Attributes"]["ApproximateNumberOfMessages"]')" = "0" ]
if err="$(sqs get-queue-url --queue-name no-such-queue 2>&1)"; then
    echo "get-queue-url of a missing queue succeeded" >&2
    exit 1
fi
case "$err" in
*NonExistentQueue*) ;;
*) echo "unexpected error: $err" >&2; exit 1 ;;
esac
sqs delete-queue --queue-url "$url"
echo "awscli ok"
