"""SQS FIFO queues on Sluice's ordered groups and dedup ids (issue 28, item 2), through
current boto3: `.fifo` names and FifoQueue, MessageGroupId required, deduplication by id and
by content (per queue or per group), SequenceNumber increasing, one message of a group in
flight at a time, order kept across a retry; and MessageGroupId on a standard queue (SQS fair
queues) accepted and returned without ordering."""

import os

import boto3
import botocore.exceptions
import pytest

ENDPOINT = os.environ["SQS_ENDPOINT"]


@pytest.fixture()
def sqs():
    return boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=os.environ["KEY_ID"],
                        aws_secret_access_key=os.environ["SECRET"])


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def receive(sqs, url, **kw):
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                               MessageSystemAttributeNames=["All"], **kw).get("Messages", [])


def test_fifo_queues_are_made_as_sqs_makes_them(sqs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.create_queue(QueueName="no-attribute.fifo")
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.create_queue(QueueName="plain", Attributes={"FifoQueue": "true"})
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.create_queue(QueueName="plain", Attributes={"ContentBasedDeduplication": "true"})
    assert code(e) == "InvalidAttributeName"
    url = sqs.create_queue(QueueName="made.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    assert url.endswith("/made.fifo")
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert {k: got[k] for k in ["FifoQueue", "ContentBasedDeduplication", "DeduplicationScope",
                                "FifoThroughputLimit"]} == {
        "FifoQueue": "true", "ContentBasedDeduplication": "false",
        "DeduplicationScope": "queue", "FifoThroughputLimit": "perQueue"}
    assert sqs.create_queue(QueueName="made.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"] == url
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"FifoQueue": "false"})
    assert code(e) == "InvalidAttributeValue"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"FifoThroughputLimit": "perMessageGroupId"})
    assert code(e) == "InvalidAttributeValue"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert code(e) == "MissingParameter"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g",
                         MessageDeduplicationId="d", DelaySeconds=5)
    assert code(e) == "InvalidParameterValue"


def test_order_per_group_across_a_retry_dedup_and_sequence_numbers(sqs):
    url = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sequence = []
    sent = {}
    for group, body in [("A", "a1"), ("B", "b1"), ("A", "a2"), ("B", "b2"), ("A", "a3")]:
        answer = sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group,
                                  MessageDeduplicationId=f"id-{body}")
        sequence.append(int(answer["SequenceNumber"]))
        sent[body] = answer["MessageId"]
    assert sequence == sorted(sequence) and len(set(sequence)) == 5
    # The same dedup id within five minutes: accepted, the original's id, nothing added.
    again = sqs.send_message(QueueUrl=url, MessageBody="a1 again", MessageGroupId="A",
                             MessageDeduplicationId="id-a1")
    assert again["MessageId"] == sent["a1"]
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "x", "MessageBody": "a4", "MessageGroupId": "A", "MessageDeduplicationId": "id-a4"},
        {"Id": "y", "MessageBody": "b3", "MessageGroupId": "B", "MessageDeduplicationId": "id-b3"},
    ])
    numbers = [int(s["SequenceNumber"]) for s in batch["Successful"]]
    assert min(numbers) > max(sequence)

    # One message of a group in flight at a time: the heads of A and B, then nothing.
    first = receive(sqs, url)
    assert sorted(m["Body"] for m in first) == ["a1", "b1"]
    a1 = next(m for m in first if m["Body"] == "a1")
    assert a1["Attributes"]["MessageGroupId"] == "A"
    assert a1["Attributes"]["MessageDeduplicationId"] == "id-a1"
    assert int(a1["Attributes"]["SequenceNumber"]) == sequence[0]
    assert receive(sqs, url) == []
    # A retry keeps the order: a1 again before a2.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=a1["ReceiptHandle"],
                                  VisibilityTimeout=0)
    (retried,) = receive(sqs, url)
    assert retried["Body"] == "a1" and retried["Attributes"]["ApproximateReceiveCount"] == "2"
    order = {"A": ["a1"], "B": ["b1"]}
    in_flight = [retried, next(m for m in first if m["Body"] == "b1")]
    while in_flight:
        for m in in_flight:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        in_flight = receive(sqs, url)
        for m in in_flight:
            order[m["Attributes"]["MessageGroupId"]].append(m["Body"])
    assert order == {"A": ["a1", "a2", "a3", "a4"], "B": ["b1", "b2", "b3"]}


def test_content_based_and_per_group_deduplication(sqs):
    url = sqs.create_queue(QueueName="content.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    one = sqs.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g")
    two = sqs.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g")
    assert one["MessageId"] == two["MessageId"]
    (m,) = receive(sqs, url)
    assert len(m["Attributes"]["MessageDeduplicationId"]) == 64  # SHA-256 of the body
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert receive(sqs, url) == []

    scoped = sqs.create_queue(QueueName="scoped.fifo", Attributes={
        "FifoQueue": "true", "DeduplicationScope": "messageGroup"})["QueueUrl"]
    ids = {sqs.send_message(QueueUrl=scoped, MessageBody=g, MessageGroupId=g,
                            MessageDeduplicationId="same")["MessageId"] for g in ["g1", "g2"]}
    assert len(ids) == 2
    assert sorted(m["Body"] for m in receive(sqs, scoped)) == ["g1", "g2"]


def test_message_group_id_on_a_standard_queue_is_a_fair_queue_tenant(sqs):
    url = sqs.create_queue(QueueName="fair")["QueueUrl"]
    for i in range(2):
        answer = sqs.send_message(QueueUrl=url, MessageBody=f"t{i}", MessageGroupId="tenant-1")
        assert "SequenceNumber" not in answer
    got = receive(sqs, url)
    # No ordering: both of the tenant's messages are in flight together.
    assert sorted(m["Body"] for m in got) == ["t0", "t1"]
    assert {m["Attributes"]["MessageGroupId"] for m in got} == {"tenant-1"}
    assert all("SequenceNumber" not in m["Attributes"] for m in got)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert code(e) == "InvalidParameterValue"


def test_a_receipt_handle_of_an_earlier_receive(sqs):
    url = sqs.create_queue(QueueName="receipts.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m", MessageGroupId="g", MessageDeduplicationId="m")
    (old,) = receive(sqs, url)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=old["ReceiptHandle"],
                                  VisibilityTimeout=0)
    (new,) = receive(sqs, url)
    # FIFO: the earlier handle no longer deletes nor changes visibility.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=old["ReceiptHandle"])
    assert code(e) == "InvalidParameterValue"
    assert "The receipt handle has expired." in e.value.response["Error"]["Message"]
    batch = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "old", "ReceiptHandle": old["ReceiptHandle"]}])
    assert [(f["Id"], f["Code"]) for f in batch["Failed"]] == [("old", "InvalidParameterValue")]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=old["ReceiptHandle"],
                                      VisibilityTimeout=10)
    assert code(e) == "AWS.SimpleQueueService.MessageNotInflight"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=new["ReceiptHandle"])

    # A standard queue: deleting with the earlier handle succeeds and changes nothing.
    std = sqs.create_queue(QueueName="receipts")["QueueUrl"]
    sqs.send_message(QueueUrl=std, MessageBody="m")
    (old,) = receive(sqs, std)
    sqs.change_message_visibility(QueueUrl=std, ReceiptHandle=old["ReceiptHandle"],
                                  VisibilityTimeout=0)
    (new,) = receive(sqs, std)
    sqs.delete_message(QueueUrl=std, ReceiptHandle=old["ReceiptHandle"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.change_message_visibility(QueueUrl=std, ReceiptHandle=old["ReceiptHandle"],
                                      VisibilityTimeout=10)
    assert code(e) == "AWS.SimpleQueueService.MessageNotInflight"
    sqs.change_message_visibility(QueueUrl=std, ReceiptHandle=new["ReceiptHandle"],
                                  VisibilityTimeout=0)
    (again,) = receive(sqs, std)
    assert again["Attributes"]["ApproximateReceiveCount"] == "3"


def test_a_fifo_queue_dead_letters_to_a_fifo_queue(sqs):
    arn = "arn:aws:sqs:us-east-1:000000000000:"
    sqs.create_queue(QueueName="dead.fifo", Attributes={"FifoQueue": "true"})
    sqs.create_queue(QueueName="dead-standard")
    for name, attributes, target in [
        ("source.fifo", {"FifoQueue": "true"}, "dead-standard"),
        ("source", {}, "dead.fifo"),
    ]:
        policy = '{"deadLetterTargetArn": "%s%s", "maxReceiveCount": "2"}' % (arn, target)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sqs.create_queue(QueueName=name, Attributes={**attributes, "RedrivePolicy": policy})
        assert code(e) == "InvalidAttributeValue"
    policy = '{"deadLetterTargetArn": "%sdead.fifo", "maxReceiveCount": "2"}' % arn
    url = sqs.create_queue(QueueName="source.fifo", Attributes={
        "FifoQueue": "true", "RedrivePolicy": policy})["QueueUrl"]
    assert sqs.list_dead_letter_source_queues(
        QueueUrl=url.replace("source.fifo", "dead.fifo"))["queueUrls"] == [url]
