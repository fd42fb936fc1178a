"""A wider boto3 scenario (current boto3, JSON protocol): batches, message attributes with
botocore's own MD5 checks, visibility changes, redrive to a dead-letter queue, long polling that
returns early on a send, interplay with Sluice's HTTP API, and SQS's errors."""

import json
import os
import threading
import time
import urllib.request

import boto3
import botocore.config
import botocore.exceptions
import pytest

ENDPOINT = os.environ["SQS_ENDPOINT"]
SLUICE_URL = os.environ["SLUICE_URL"]
ADMIN = os.environ["SLUICE_ADMIN_TOKEN"]


def client(key=None, secret=None):
    return boto3.client(
        "sqs",
        endpoint_url=ENDPOINT,
        region_name="eu-west-1",
        aws_access_key_id=key or os.environ["KEY_ID"],
        aws_secret_access_key=secret or os.environ["SECRET"],
    )


def sluice(method, path, body=None, headers=None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(SLUICE_URL + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {ADMIN}")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    if data is not None and not isinstance(body, bytes):
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture()
def sqs():
    return client()


def fresh(sqs, name, **attributes):
    url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})[
        "QueueUrl"
    ]
    sqs.purge_queue(QueueUrl=url)
    return url


def test_queue_lifecycle_and_attributes(sqs):
    url = fresh(sqs, "life", VisibilityTimeout=7, DelaySeconds=0, MessageRetentionPeriod=3600)
    assert url.endswith("/000000000000/life")
    assert sqs.get_queue_url(QueueName="life")["QueueUrl"] == url
    # Creating again with the same attributes is fine; with others it is not.
    assert sqs.create_queue(QueueName="life", Attributes={"VisibilityTimeout": "7"})["QueueUrl"] == url
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.create_queue(QueueName="life", Attributes={"VisibilityTimeout": "8"})
    assert code(e) == "QueueAlreadyExists"
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "7"
    assert attrs["MessageRetentionPeriod"] == "3600"
    assert attrs["QueueArn"] == "arn:aws:sqs:eu-west-1:000000000000:life"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "2048"})
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])
    assert got["Attributes"] == {"MaximumMessageSize": "2048"}
    # An ordinary Sluice queue, with the settings SQS set.
    shown = sluice("GET", "/v1/queues/life")
    assert shown["settings"]["visibility_timeout_ms"] == 7000
    assert shown["settings"]["max_message_bytes"] == 2048
    urls = sqs.list_queues(QueueNamePrefix="li")["QueueUrls"]
    assert url in urls
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="life")


def test_batches_attributes_and_md5(sqs):
    url = fresh(sqs, "batches")
    entries = [
        {
            "Id": f"m{i}",
            "MessageBody": f"body {i} ✓",
            "MessageAttributes": {
                "kind": {"DataType": "String", "StringValue": "test"},
                "n": {"DataType": "Number", "StringValue": str(i)},
                "blob": {"DataType": "Binary", "BinaryValue": bytes([0, i, 255])},
                "label": {"DataType": "String.custom", "StringValue": "x"},
            },
        }
        for i in range(10)
    ]
    # botocore checks MD5OfMessageBody and MD5OfMessageAttributes of every entry itself.
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert [s["Id"] for s in sent["Successful"]] == [f"m{i}" for i in range(10)]
    assert sent.get("Failed", []) == []
    got = []
    while len(got) < 10:
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        got += answer.get("Messages", [])
    by_body = {m["Body"]: m for m in got}
    m3 = by_body["body 3 ✓"]
    assert m3["MessageAttributes"]["blob"] == {"DataType": "Binary", "BinaryValue": bytes([0, 3, 255])}
    assert m3["MessageAttributes"]["n"] == {"DataType": "Number", "StringValue": "3"}
    assert m3["MessageAttributes"]["label"]["DataType"] == "String.custom"
    assert m3["Attributes"]["ApproximateReceiveCount"] == "1"
    assert abs(int(m3["Attributes"]["SentTimestamp"]) - time.time() * 1000) < 60_000
    deleted = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got[:9])]
        + [{"Id": "bogus", "ReceiptHandle": "not-a-receipt"}],
    )
    assert len(deleted["Successful"]) == 9
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[9]["ReceiptHandle"])
    assert [(f["Id"], f["Code"]) for f in deleted["Failed"]] == [("bogus", "ReceiptHandleIsInvalid")]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    # Only the asked-for attributes come back (and their MD5 is over those).
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=entries[0]["MessageAttributes"])
    only = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["kind"])["Messages"][0]
    assert list(only["MessageAttributes"]) == ["kind"]


def test_batch_errors(sqs):
    url = fresh(sqs, "batcherrors")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}]
        )
    assert code(e) == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": "x"} for i in range(11)]
        )
    assert code(e) == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.delete_message_batch(QueueUrl=url, Entries=[])
    assert code(e) == "AWS.SimpleQueueService.EmptyBatchRequest"
    # One bad entry fails alone.
    mixed = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "good", "MessageBody": "fine"},
            {"Id": "late", "MessageBody": "x", "DelaySeconds": 901},
        ],
    )
    assert [s["Id"] for s in mixed["Successful"]] == ["good"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in mixed["Failed"]] == [
        ("late", "InvalidParameterValue", True)
    ]


def test_visibility_changes(sqs):
    url = fresh(sqs, "visibility", VisibilityTimeout=30)
    sqs.send_message(QueueUrl=url, MessageBody="v")
    m = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    # Visible again at once.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    # The old receipt no longer holds the message.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=5)
    assert code(e) == "AWS.SimpleQueueService.MessageNotInflight"
    # A short visibility through the batch call lets it come back by itself.
    changed = sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeout": 1}]
    )
    assert [s["Id"] for s in changed["Successful"]] == ["x"]
    start = time.monotonic()
    third = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"][0]
    assert time.monotonic() - start < 4
    sqs.delete_message(QueueUrl=url, ReceiptHandle=third["ReceiptHandle"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")
    assert code(e) == "ReceiptHandleIsInvalid"


def test_redrive_to_a_dead_letter_queue(sqs):
    dlq = fresh(sqs, "redrive-dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = fresh(sqs, "redrive")
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})
    got = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
    assert got["deadLetterTargetArn"] == dlq_arn and int(got["maxReceiveCount"]) == 2
    assert sluice("GET", "/v1/queues/redrive")["settings"]["dead_letter_queue"] == "redrive-dlq"
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        m = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"][0]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    dead = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=2, MessageAttributeNames=["All"],
                               MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert dead["Body"] == "poison"
    # SQS keeps counting in the dead-letter queue: two receives there, this one the third.
    assert dead["Attributes"]["ApproximateReceiveCount"] == "3"


def test_long_polling_returns_early_on_a_send(sqs):
    url = fresh(sqs, "longpoll")
    other = client()
    threading.Timer(0.5, lambda: other.send_message(QueueUrl=url, MessageBody="wake")).start()
    start = time.monotonic()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
    took = time.monotonic() - start
    assert got["Messages"][0]["Body"] == "wake"
    assert 0.3 < took < 5, took
    # Nothing arrives: the wait runs its course.
    start = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert time.monotonic() - start >= 0.9


def test_http_and_sqs_see_the_same_messages(sqs):
    url = fresh(sqs, "interop")
    sluice("POST", "/v1/queues/interop/messages", b"from http", {"Sluice-Attr-origin": "http"})
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=2)["Messages"][0]
    assert m["Body"] == "from http"
    assert m["MessageAttributes"]["origin"] == {"DataType": "String", "StringValue": "http"}
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    sqs.send_message(QueueUrl=url, MessageBody="from sqs",
                     MessageAttributes={"n": {"DataType": "Number", "StringValue": "5"}})
    pulled = sluice("POST", "/v1/queues/interop/messages/receive", {"max_messages": 1})["messages"]
    assert pulled[0]["body"] == "from sqs"
    assert pulled[0]["attributes"]["n"] == "5"


def test_errors_and_authentication(sqs):
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
        sqs.send_message(QueueUrl=ENDPOINT + "/000000000000/nope", MessageBody="x")
    assert code(e) == "AWS.SimpleQueueService.NonExistentQueue"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    url = fresh(sqs, "errs")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x",
                         MessageAttributes={"sluice-x": {"DataType": "String", "StringValue": "y"}})
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Nonsense"])
    assert code(e) == "InvalidAttributeName"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client(secret="wrong-secret").list_queues()
    assert code(e) == "SignatureDoesNotMatch"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client(key="AKIANOTOURS", secret="x").list_queues()
    assert code(e) == "InvalidClientTokenId"
    unsigned = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1",
                            config=botocore.config.Config(signature_version=botocore.UNSIGNED))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        unsigned.list_queues()
    assert code(e) == "MissingAuthenticationToken"
    # Scopes apply: a produce-only key may send to its queue and nothing else.
    made = sluice("POST", "/v1/tokens", {"name": "producer", "scopes": ["produce:errs"], "sqs": True})
    producer = client(made["sqs_access_key_id"], made["sqs_secret_access_key"])
    producer.send_message(QueueUrl=url, MessageBody="allowed")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        producer.receive_message(QueueUrl=url)
    assert code(e) == "AccessDenied"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(botocore.exceptions.ClientError) as e:
        producer.create_queue(QueueName="other")
    assert code(e) == "AccessDenied"
    # The key is listed with its token (never its secret) and dies with it.
    listed = {t["id"]: t for t in sluice("GET", "/v1/tokens")["tokens"]}
    assert listed[made["id"]]["sqs_access_key_id"] == made["sqs_access_key_id"]
    assert "sqs_secret_access_key" not in listed[made["id"]]
    sluice("DELETE", f"/v1/tokens/{made['id']}")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        producer.send_message(QueueUrl=url, MessageBody="revoked")
    assert code(e) == "InvalidClientTokenId"
