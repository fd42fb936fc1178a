"""Empty answers through the last query-protocol releases: botocore 1.31.56 (boto3 1.28.56)
and the AWS CLI 1.29.56 built on it. Both look a query answer's `<OpResult>` element up by
name, so an answer that drops it when empty makes botocore raise `KeyError` and the CLI exit
255; every empty result here must still parse, and the XML must carry the element."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import boto3
import botocore
import pytest

NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"
ENDPOINT = os.environ["SQS_ENDPOINT"]


@pytest.fixture(scope="module")
def sqs():
    assert botocore.__version__ == "1.31.56", botocore.__version__
    client = boto3.client(
        "sqs",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=os.environ["KEY_ID"],
        aws_secret_access_key=os.environ["SECRET"],
    )
    assert client.meta.service_model.protocol == "query"
    bodies = []
    client.meta.events.register(
        "after-call.sqs", lambda http_response=None, **_: bodies.append(http_response.content)
    )
    client.bodies = bodies
    return client


def last_xml(sqs):
    return ET.fromstring(sqs.bodies[-1])


def aws(*args):
    """The AWS CLI of this environment; its output as text, failing on a non-zero exit."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ["KEY_ID"],
               AWS_SECRET_ACCESS_KEY=os.environ["SECRET"], AWS_DEFAULT_REGION="us-east-1")
    cli = os.path.join(os.path.dirname(sys.executable), "aws")
    done = subprocess.run([cli, "--endpoint-url", ENDPOINT, "--output", "json", "sqs", *args],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
    return done.stdout


def test_an_empty_list_queues_first(sqs):
    # Runs first, on a server with no queues at all.
    assert "QueueUrls" not in sqs.list_queues()
    assert last_xml(sqs).find(f"{NS}ListQueuesResult") is not None
    assert aws("list-queues").strip() == ""
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="nothing-like-this")


def test_an_empty_receive(sqs):
    url = sqs.create_queue(QueueName="empty-q")["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert "Messages" not in got
    root = last_xml(sqs)
    result = root.find(f"{NS}ReceiveMessageResult")
    assert result is not None and len(result) == 0
    assert aws("receive-message", "--queue-url", url).strip() == ""
    # A long poll that ends empty answers the same way.
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)


def test_empty_queue_attributes(sqs):
    url = sqs.create_queue(QueueName="no-redrive")["QueueUrl"]
    # A queue without a dead-letter queue has no RedrivePolicy: an empty result.
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    assert "Attributes" not in got
    assert last_xml(sqs).find(f"{NS}GetQueueAttributesResult") is not None
    assert aws("get-queue-attributes", "--queue-url", url,
               "--attribute-names", "RedrivePolicy").strip() == ""


def test_the_rest_of_a_round_trip_still_parses(sqs):
    url = sqs.create_queue(QueueName="round-trip")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    (m,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=30)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    # Operations without an output answer with the metadata alone, as SQS does.
    assert [e.tag for e in last_xml(sqs)] == [f"{NS}ResponseMetadata"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
    sqs.purge_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=url)
