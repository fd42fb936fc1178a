"""Runs a Celery worker on kombu's SQS transport against Sluice's SQS endpoint and sends it
200 tasks: each must run exactly once. Run by tests/e2e/sqs.rs with the `celery` (current
botocore) and `celery-query` (botocore 1.31.56, query protocol) environments."""

import os
import subprocess
import sys
import tempfile
import time

TASKS = 200
DEADLINE_S = 120

os.environ["AWS_ACCESS_KEY_ID"] = os.environ["KEY_ID"]
os.environ["AWS_SECRET_ACCESS_KEY"] = os.environ["SECRET"]
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
out = tempfile.NamedTemporaryFile(prefix="celery-", suffix=".txt", delete=False).name
os.environ["CELERY_OUT"] = out

import botocore  # noqa: E402

from celery_app import record  # noqa: E402

def wait_for(what, done):
    start = time.monotonic()
    while not done():
        if worker.poll() is not None:
            sys.exit(f"the worker exited ({worker.returncode}):\n{worker.stdout.read()}")
        if time.monotonic() - start > DEADLINE_S:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.1)


def ran():
    with open(out) as f:
        return f.read().split()


worker = subprocess.Popen(
    [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo",
     "--loglevel=WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
try:
    # One task first, then an idle spell: the worker's polls of its empty queue are what
    # failed on the query protocol (botocore before 1.31.57) when empty results lost their
    # Result element; then the rest, each of which must run once.
    record.delay(0)
    wait_for("the first task", lambda: ran() == ["0"])
    time.sleep(3)
    for n in range(1, TASKS):
        record.delay(n)
    wait_for(f"{TASKS} tasks", lambda: len(ran()) >= TASKS)
    done = ran()
finally:
    worker.terminate()
    try:
        log = worker.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        worker.kill()
        log = worker.communicate()[0]
ran = sorted(int(n) for n in done)
assert ran == list(range(TASKS)), (f"ran {len(ran)} tasks, {len(set(ran))} distinct", log)
print(f"celery ok: {TASKS} tasks once each on botocore {botocore.__version__}")
