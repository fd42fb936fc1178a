"""A Celery app on kombu's SQS transport, pointed at Sluice's SQS endpoint (SQS_ENDPOINT's
host and port; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Its one task
appends its argument to the file CELERY_OUT, so the driver can count what ran."""

import os
from urllib.parse import urlsplit

from celery import Celery

endpoint = urlsplit(os.environ["SQS_ENDPOINT"])
app = Celery("sluice_celery", broker=f"sqs://{endpoint.hostname}:{endpoint.port}")
app.conf.update(
    broker_transport_options={"region": "us-east-1", "is_secure": False,
                              "wait_time_seconds": 1, "polling_interval": 0.1,
                              "visibility_timeout": 60},
    task_default_queue="sluice-celery",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task
def record(n):
    with open(os.environ["CELERY_OUT"], "a") as out:
        out.write(f"{n}\n")
