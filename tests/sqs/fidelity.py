"""Details of SQS's behaviour (issue 28, item 4) through current boto3 (JSON protocol):
system attributes (AWSTraceHeader, ApproximateFirstReceiveTimestamp), attribute-name
wildcards, the 1 MiB size limits and their errors, SQS's wording for a missing queue, queue
URLs of any account, and MessageIds that are UUIDs."""

import os
import time
import uuid

import boto3
import botocore.exceptions
import pytest

ENDPOINT = os.environ["SQS_ENDPOINT"]
MIB = 1024 * 1024
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture()
def sqs():
    return boto3.client(
        "sqs",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=os.environ["KEY_ID"],
        aws_secret_access_key=os.environ["SECRET"],
    )


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_aws_trace_header_is_kept_and_returned(sqs):
    url = sqs.create_queue(QueueName="traced")["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=url, MessageBody="x",
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE}},
    )
    assert sent["MD5OfMessageSystemAttributes"]
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[{
        "Id": "b", "MessageBody": "y",
        "MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE}},
    }])
    assert [s["Id"] for s in batch["Successful"]] == ["b"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                              MessageSystemAttributeNames=["AWSTraceHeader"],
                              MessageAttributeNames=["All"])["Messages"]
    assert [m["Attributes"] for m in got] == [{"AWSTraceHeader": TRACE}] * 2
    assert all("MessageAttributes" not in m for m in got)
    for m in got:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                      VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                MessageSystemAttributeNames=["All"])["Messages"]
    assert len(again) == 2
    for m in again:
        assert m["Attributes"]["AWSTraceHeader"] == TRACE
        assert m["Attributes"]["ApproximateReceiveCount"] == "2"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageSystemAttributes={
            "AWSTraceHeader": {"DataType": "Number", "StringValue": "1"}})
    assert code(e) == "InvalidParameterValue"


def test_message_attribute_name_wildcards(sqs):
    url = sqs.create_queue(QueueName="wildcards")["QueueUrl"]
    attrs = {name: {"DataType": "String", "StringValue": name}
             for name in ["Custom.a", "Custom.b", "Customer", "Other"]}
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attrs)
    # botocore checks MD5OfMessageAttributes against the attributes it received.
    (m,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["Custom.*"])["Messages"]
    assert sorted(m["MessageAttributes"]) == ["Custom.a", "Custom.b"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    (m,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["Custom.*", "Other"])["Messages"]
    assert sorted(m["MessageAttributes"]) == ["Custom.a", "Custom.b", "Other"]


def test_one_mib_messages_and_batches(sqs):
    url = sqs.create_queue(QueueName="big")["QueueUrl"]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])
    assert got["Attributes"] == {"MaximumMessageSize": str(MIB)}
    sqs.send_message(QueueUrl=url, MessageBody="a" * MIB)
    (m,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert len(m["Body"]) == MIB
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="a" * (MIB + 1))
    assert code(e) == "InvalidParameterValue"
    # The sum of a batch is limited too, and the whole batch is refused.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": "one", "MessageBody": "a" * (MIB // 2)},
            {"Id": "two", "MessageBody": "b" * (MIB // 2 + 1)},
        ])
    assert code(e) == "AWS.SimpleQueueService.BatchRequestTooLong"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": str(MIB)})


def test_out_of_range_attribute_values(sqs):
    url = sqs.create_queue(QueueName="ranges")["QueueUrl"]
    for name, value in [("MaximumMessageSize", str(MIB + 1)), ("MaximumMessageSize", "1023"),
                        ("VisibilityTimeout", "43201"), ("DelaySeconds", "-1"),
                        ("MessageRetentionPeriod", "59"),
                        ("RedrivePolicy", '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:'
                                          '000000000000:ranges", "maxReceiveCount": "0"}')]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={name: value})
        assert code(e) == "InvalidAttributeValue", (name, value, e.value.response)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sqs.create_queue(QueueName="ranges-new", Attributes={name: value})
        assert code(e) == "InvalidAttributeValue", (name, value)


def test_a_missing_queue_is_worded_as_sqs_words_it(sqs):
    for call in [lambda: sqs.get_queue_url(QueueName="nope"),
                 lambda: sqs.send_message(QueueUrl=ENDPOINT + "/000000000000/nope", MessageBody="x"),
                 lambda: sqs.get_queue_attributes(QueueUrl=ENDPOINT + "/000000000000/nope")]:
        with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
            call()
        assert code(e) == "AWS.SimpleQueueService.NonExistentQueue"
        assert e.value.response["Error"]["Message"] == "The specified queue does not exist."


def test_queue_urls_of_any_account(sqs):
    url = sqs.create_queue(QueueName="accounts")["QueueUrl"]
    copied = url.replace("/000000000000/", "/123456789012/")
    assert copied != url
    sqs.send_message(QueueUrl=copied, MessageBody="from a copied URL")
    (m,) = sqs.receive_message(QueueUrl=copied, WaitTimeSeconds=5)["Messages"]
    assert m["Body"] == "from a copied URL"
    sqs.delete_message(QueueUrl=copied, ReceiptHandle=m["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=copied, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_message_ids_are_uuids_unique_across_queues(sqs):
    ids = []
    for name in ["ids-a", "ids-b"]:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        ids.append(sqs.send_message(QueueUrl=url, MessageBody="x")["MessageId"])
        batch = sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": "y"} for i in range(3)])
        ids.extend(s["MessageId"] for s in batch["Successful"])
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert {m["MessageId"] for m in got} <= set(ids)
    assert len(set(ids)) == len(ids) == 8
    assert all(uuid.UUID(i).version == 8 for i in ids)


def test_approximate_first_receive_timestamp(sqs):
    url = sqs.create_queue(QueueName="first-receive")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    before = int(time.time() * 1000)
    (m,) = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"]
    first = int(m["Attributes"]["ApproximateFirstReceiveTimestamp"])
    assert int(m["Attributes"]["SentTimestamp"]) <= first
    assert before - 5_000 <= first <= int(time.time() * 1000) + 5_000
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    (m,) = sqs.receive_message(
        QueueUrl=url, MessageSystemAttributeNames=["ApproximateFirstReceiveTimestamp",
                                                   "ApproximateReceiveCount"])["Messages"]
    assert m["Attributes"] == {"ApproximateFirstReceiveTimestamp": str(first),
                               "ApproximateReceiveCount": "2"}
