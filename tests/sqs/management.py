"""Queue management SQS has beyond messages (issue 28, item 3): tags (TagQueue, UntagQueue,
ListQueueTags, CreateQueue's tags), ListDeadLetterSourceQueues, message move tasks on
Sluice's redrive, AddPermission and
RemovePermission, and the Policy and encryption attributes, which round-trip but decide
nothing: Sluice's token scopes do. Run with current boto3 (JSON protocol) and with botocore
1.31.50 (query protocol); the assertions hold for both."""

import json
import os
import urllib.request

import boto3
import botocore.exceptions
import pytest

ENDPOINT = os.environ["SQS_ENDPOINT"]
SLUICE_URL = os.environ["SLUICE_URL"]
ADMIN = os.environ["SLUICE_ADMIN_TOKEN"]
POLICY_DENY_ALL = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "nobody", "Effect": "Deny", "Principal": "*", "Action": "SQS:*", "Resource": "*"}]})


def client(key=None, secret=None):
    return boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=key or os.environ["KEY_ID"],
                        aws_secret_access_key=secret or os.environ["SECRET"])


def sluice(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(SLUICE_URL + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {ADMIN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture()
def sqs():
    return client()


def protocol(sqs):
    return sqs.meta.service_model.protocol


def test_tags(sqs):
    name = f"tagged-{protocol(sqs)}"
    url = sqs.create_queue(QueueName=name, tags={"team": "billing", "env": "test"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "billing", "env": "test"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "prod", "owner": "ana"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {
        "team": "billing", "env": "prod", "owner": "ana"}
    # A change through Sluice's own API keeps them.
    sluice("PATCH", f"/v1/queues/{name}", {"visibility_timeout_ms": 9000})
    sqs.untag_queue(QueueUrl=url, TagKeys=["team", "owner", "never-set"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "prod"}
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
        "Attributes"] == {"VisibilityTimeout": "9"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.tag_queue(QueueUrl=url, Tags={f"k{i}": "v" for i in range(51)})
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.list_queue_tags(QueueUrl=url + "-missing")


def test_dead_letter_source_queues(sqs):
    p = protocol(sqs)
    dlq = sqs.create_queue(QueueName=f"dlq-{p}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    # JSON answers `"queueUrls": []`; an empty flattened XML list parses as absent.
    empty = sqs.list_dead_letter_source_queues(QueueUrl=dlq)
    assert empty.get("queueUrls", []) == [] and "NextToken" not in empty
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})
    sources = [sqs.create_queue(QueueName=f"src-{p}-{i}", Attributes={"RedrivePolicy": policy})[
        "QueueUrl"] for i in range(3)]
    sqs.create_queue(QueueName=f"unrelated-{p}")
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == sources
    first = sqs.list_dead_letter_source_queues(QueueUrl=dlq, MaxResults=2)
    assert first["queueUrls"] == sources[:2]
    rest = sqs.list_dead_letter_source_queues(QueueUrl=dlq, MaxResults=2,
                                              NextToken=first["NextToken"])
    assert rest["queueUrls"] == sources[2:] and "NextToken" not in rest
    paged = sqs.get_paginator("list_dead_letter_source_queues").paginate(
        QueueUrl=dlq, PaginationConfig={"PageSize": 1})
    assert [u for page in paged for u in page["queueUrls"]] == sources


def test_permissions_and_policy_round_trip_without_deciding_access(sqs):
    url = sqs.create_queue(QueueName=f"policed-{protocol(sqs)}")["QueueUrl"]
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
    sqs.add_permission(QueueUrl=url, Label="send-from-partner", AWSAccountIds=["111122223333"],
                       Actions=["SendMessage", "GetQueueUrl"])
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])[
        "Attributes"]["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Sid"] == "send-from-partner"
    assert statement["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert statement["Action"] == ["SQS:SendMessage", "SQS:GetQueueUrl"]
    assert statement["Resource"].endswith(":" + url.rsplit("/", 1)[1])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.add_permission(QueueUrl=url, Label="send-from-partner",
                           AWSAccountIds=["111122223333"], Actions=["*"])
    assert code(e) == "InvalidParameterValue"
    sqs.remove_permission(QueueUrl=url, Label="send-from-partner")
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.remove_permission(QueueUrl=url, Label="send-from-partner")
    assert code(e) == "InvalidParameterValue"

    # A policy set directly comes back as set, and denies nothing: the key's scopes decide.
    kept = {"Policy": POLICY_DENY_ALL, "KmsMasterKeyId": "alias/aws/sqs",
            "KmsDataKeyReusePeriodSeconds": "600", "SqsManagedSseEnabled": "true"}
    sqs.set_queue_attributes(QueueUrl=url, Attributes=kept)
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert {k: got[k] for k in kept} == kept
    sqs.send_message(QueueUrl=url, MessageBody="the admin key still sends")
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": "not json"})
    assert code(e) == "InvalidAttributeValue"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    assert "Policy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"]

    # A produce-only key may neither tag nor grant.
    made = sluice("POST", "/v1/tokens", {"name": f"p-{protocol(sqs)}",
                                         "scopes": ["produce"], "sqs": True})
    producer = client(made["sqs_access_key_id"], made["sqs_secret_access_key"])
    for call in [lambda: producer.tag_queue(QueueUrl=url, Tags={"a": "b"}),
                 lambda: producer.add_permission(QueueUrl=url, Label="x",
                                                 AWSAccountIds=["111122223333"], Actions=["*"])]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert code(e) == "AccessDenied"


def test_message_move_tasks_are_redrives(sqs):
    p = protocol(sqs)
    dlq = sqs.create_queue(QueueName=f"moves-dlq-{p}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "1"})
    src = sqs.create_queue(QueueName=f"moves-src-{p}", Attributes={"RedrivePolicy": policy})[
        "QueueUrl"]
    for body in ["one", "two"]:
        sqs.send_message(QueueUrl=src, MessageBody=body)
    for m in sqs.receive_message(QueueUrl=src, MaxNumberOfMessages=10, WaitTimeSeconds=5)[
            "Messages"]:
        sqs.change_message_visibility(QueueUrl=src, ReceiptHandle=m["ReceiptHandle"],
                                      VisibilityTimeout=0)
    assert "Messages" not in sqs.receive_message(QueueUrl=src)

    def depth(url):
        return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])

    assert depth(dlq) == 2
    handle = sqs.start_message_move_task(SourceArn=arn)["TaskHandle"]
    assert depth(dlq) == 0 and depth(src) == 2
    (task,) = sqs.list_message_move_tasks(SourceArn=arn)["Results"]
    assert task["Status"] == "COMPLETED"
    assert task["ApproximateNumberOfMessagesMoved"] == 2
    assert task["SourceArn"] == arn and "TaskHandle" not in task
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.cancel_message_move_task(TaskHandle=handle)
    assert code(e) == "ResourceNotFoundException"
    # A source that is no queue's dead-letter queue is refused, as SQS refuses it.
    src_arn = arn.rsplit(":", 1)[0] + ":" + src.rsplit("/", 1)[1]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.start_message_move_task(SourceArn=src_arn)
    assert code(e) == "AWS.SimpleQueueService.UnsupportedOperation"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.list_message_move_tasks(SourceArn=arn + "-missing")
    assert code(e) == "ResourceNotFoundException"
    # To another queue, and listed newest first.
    elsewhere = sqs.create_queue(QueueName=f"moves-to-{p}")["QueueUrl"]
    elsewhere_arn = arn.rsplit(":", 1)[0] + ":" + elsewhere.rsplit("/", 1)[1]
    sqs.send_message(QueueUrl=src, MessageBody="three")
    for m in sqs.receive_message(QueueUrl=src, MaxNumberOfMessages=10, WaitTimeSeconds=5)[
            "Messages"]:
        sqs.change_message_visibility(QueueUrl=src, ReceiptHandle=m["ReceiptHandle"],
                                      VisibilityTimeout=0)
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    sqs.start_message_move_task(SourceArn=arn, DestinationArn=elsewhere_arn,
                                MaxNumberOfMessagesPerSecond=50)
    assert depth(elsewhere) == 3
    tasks = sqs.list_message_move_tasks(SourceArn=arn, MaxResults=10)["Results"]
    assert [t["ApproximateNumberOfMessagesMoved"] for t in tasks] == [3, 2]
    assert tasks[0]["DestinationArn"] == elsewhere_arn
    assert tasks[0]["MaxNumberOfMessagesPerSecond"] == 50
