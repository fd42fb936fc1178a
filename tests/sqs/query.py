"""The query protocol (form-encoded Action=..., XML answers) through botocore 1.31.50, from
before SQS moved to JSON, with every answer's XML checked as well as what botocore parsed
from it (botocore verifies the MD5s itself)."""

import os
import uuid
import xml.etree.ElementTree as ET

import boto3
import botocore.exceptions
import pytest

NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"
ENDPOINT = os.environ["SQS_ENDPOINT"]


class Wire:
    """Keeps the raw request and answer of the last call."""

    def __init__(self, sqs):
        self.request = None
        self.body = None
        sqs.meta.events.register("before-send.sqs", self.before_send)
        sqs.meta.events.register("after-call.sqs", self.after_call)
        sqs.meta.events.register("after-call-error.sqs", self.after_call)

    def before_send(self, request, **_):
        self.request = request

    def after_call(self, http_response=None, **_):
        if http_response is not None:
            self.body = http_response.content

    def xml(self):
        return ET.fromstring(self.body)


@pytest.fixture()
def sqs():
    client = boto3.client(
        "sqs",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=os.environ["KEY_ID"],
        aws_secret_access_key=os.environ["SECRET"],
    )
    assert client.meta.service_model.protocol == "query"
    return client


def test_the_query_protocol_end_to_end(sqs):
    wire = Wire(sqs)
    url = sqs.create_queue(QueueName="query-q", Attributes={"VisibilityTimeout": "20"})["QueueUrl"]
    assert "Action=CreateQueue" in str(wire.request.body)
    assert "x-amz-target" not in {k.lower() for k in wire.request.headers}
    root = wire.xml()
    assert root.tag == NS + "CreateQueueResponse"
    assert root.find(f"{NS}CreateQueueResult/{NS}QueueUrl").text == url
    assert root.find(f"{NS}ResponseMetadata/{NS}RequestId").text

    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="<order id='1'> & more",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "query"},
            "n": {"DataType": "Number", "StringValue": "1.5"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
        },
    )
    result = wire.xml().find(f"{NS}SendMessageResult")
    assert result.find(f"{NS}MessageId").text == sent["MessageId"]
    assert result.find(f"{NS}MD5OfMessageAttributes").text == sent["MD5OfMessageAttributes"]

    batch = sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "A"}, {"Id": "b", "MessageBody": "B"}]
    )
    assert sorted(s["Id"] for s in batch["Successful"]) == ["a", "b"]
    entries = wire.xml().findall(f"{NS}SendMessageBatchResult/{NS}SendMessageBatchResultEntry")
    assert sorted(e.find(f"{NS}Id").text for e in entries) == ["a", "b"]

    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    )["Messages"]
    messages = wire.xml().findall(f"{NS}ReceiveMessageResult/{NS}Message")
    assert len(messages) == len(got) == 3
    first = next(m for m in got if m["Body"] == "<order id='1'> & more")
    assert first["MessageAttributes"]["raw"]["BinaryValue"] == b"\x00\x01\xff"
    assert first["MessageAttributes"]["n"] == {"DataType": "Number", "StringValue": "1.5"}
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    xml_first = next(m for m in messages if m.find(f"{NS}Body").text.startswith("<order"))
    names = {a.find(f"{NS}Name").text for a in xml_first.findall(f"{NS}MessageAttribute")}
    assert names == {"kind", "n", "raw"}
    counts = [
        a.find(f"{NS}Value").text
        for a in xml_first.findall(f"{NS}Attribute")
        if a.find(f"{NS}Name").text == "ApproximateReceiveCount"
    ]
    assert counts == ["1"]

    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    assert wire.xml().tag == NS + "ChangeMessageVisibilityResponse"
    again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
    deleted = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": f"e{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got + again)
                 if m is not first],
    )
    assert len(deleted["Successful"]) == 3
    assert wire.xml().findall(f"{NS}DeleteMessageBatchResult/{NS}DeleteMessageBatchResultEntry")

    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "20"
    assert attrs["ApproximateNumberOfMessages"] == "0"
    listed = sqs.list_queues(QueueNamePrefix="query")["QueueUrls"]
    assert listed == [url]
    assert [e.text for e in wire.xml().findall(f"{NS}ListQueuesResult/{NS}QueueUrl")] == [url]
    sqs.purge_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=url)
    assert wire.xml().tag == NS + "DeleteQueueResponse"


def test_errors_are_xml_error_responses(sqs):
    wire = Wire(sqs)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
        sqs.get_queue_url(QueueName="missing")
    assert e.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    root = wire.xml()
    assert root.tag == NS + "ErrorResponse"
    assert root.find(f"{NS}Error/{NS}Type").text == "Sender"
    assert root.find(f"{NS}Error/{NS}Code").text == "AWS.SimpleQueueService.NonExistentQueue"
    assert root.find(f"{NS}Error/{NS}Message").text == "The specified queue does not exist."
    assert root.find(f"{NS}RequestId").text

    url = sqs.create_queue(QueueName="query-errors")["QueueUrl"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.delete_message_batch(QueueUrl=url, Entries=[])
    assert e.value.response["Error"]["Code"] == "AWS.SimpleQueueService.EmptyBatchRequest", (e.value.response, wire.request.body)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="nonsense")
    assert e.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    bad = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1",
                       aws_access_key_id=os.environ["KEY_ID"], aws_secret_access_key="nope")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.list_queues()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_trace_header_and_message_ids_on_the_query_protocol(sqs):
    wire = Wire(sqs)
    url = sqs.create_queue(QueueName="query-trace")["QueueUrl"]
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="traced",
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": header}},
    )
    assert "MessageSystemAttribute.1.Name=AWSTraceHeader" in str(wire.request.body)
    assert sent["MD5OfMessageSystemAttributes"]
    assert uuid.UUID(sent["MessageId"]).version == 8
    (got,) = sqs.receive_message(QueueUrl=url, AttributeNames=["AWSTraceHeader"],
                                 MessageAttributeNames=["All"])["Messages"]
    assert got["Attributes"] == {"AWSTraceHeader": header}
    assert got["MessageId"] == sent["MessageId"]
    assert "MessageAttributes" not in got, "the trace header is no message attribute"
    sqs.delete_queue(QueueUrl=url)
