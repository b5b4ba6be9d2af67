"""The RQ worker of wxsurvey (app/jobs/worker.py) on a real Redis."""

from __future__ import annotations

import time

import redis
from rq import Queue

from app.jobs.worker import WxsurveyWorker


def test_a_worker_stops_without_waiting_out_the_command_thread(queue_url):
    """A worker that ends (its burst done, or told to stop) joins the thread that listens for RQ's
    commands. RQ 3 let that thread wait 60 s at a time, and with redis-py 8 a stop that came just
    after the thread had seen its channel unsubscribed waited the whole minute (every second or
    third burst worker in this suite; a deploy's restart too). Here that moment is made certain."""
    connection = redis.Redis.from_url(queue_url)
    queue = Queue("worker-stop-test", connection=connection)
    try:
        job = queue.enqueue(len, [1, 2, 3])
        WxsurveyWorker([queue], connection=connection).work(burst=True)
        job.refresh()
        assert job.return_value() == 3

        worker = WxsurveyWorker([queue], connection=connection)
        worker.subscribe()
        worker.pubsub.unsubscribe()  # as RQ's unsubscribe begins; the thread reads the reply...
        deadline = time.monotonic() + 10
        while worker.pubsub.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not worker.pubsub.subscribed  # ... and goes back to waiting, before stop() comes
        started = time.monotonic()
        worker.unsubscribe()
        took = time.monotonic() - started
        assert not worker.pubsub_thread.is_alive()
        assert took < 15, f"the worker took {took:.0f} s to stop"
    finally:
        queue.delete(delete_jobs=True)
        connection.close()
