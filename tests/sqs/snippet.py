"""The issue's boto3 snippet, unchanged but for the endpoint and the credentials (from the
environment the end-to-end test sets: SQS_ENDPOINT, KEY_ID, SECRET)."""

import os

import boto3

KEY_ID = os.environ["KEY_ID"]
SECRET = os.environ["SECRET"]
processed = []


def process(body):
    processed.append(body)


sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
url = sqs.create_queue(QueueName="orders")["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody="Process order #12345")
for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", []):
    process(m["Body"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

assert processed == ["Process order #12345"], processed
assert "Messages" not in sqs.receive_message(QueueUrl=url), "the message was deleted"
print("snippet ok")
