"""The RQ worker of wxsurvey: a SimpleWorker (jobs run in this process, reusing the app context,
engine pool and Redis connections instead of rebuilding them after a fork) that knows which
queues it serves, so that a lingering drain can yield to the jobs waiting on the others."""

from __future__ import annotations

import os
import socket
from contextvars import ContextVar

from rq.worker import SimpleWorker

# How often the thread listening for RQ's commands (stop a job, shut down) wakes. RQ 3 lets it wait
# 60 s, and a worker that stops joins it (redis-py 8's PubSubWorkerThread.stop): a worker then took
# up to a minute to stop, now a second.
COMMANDS_WAKE_S = 1.0

# The worker running the current job, if any (SimpleWorker runs jobs in its own thread).
current_worker: ContextVar[WxsurveyWorker | None] = ContextVar("current_worker", default=None)


class WxsurveyWorker(SimpleWorker):
    """Serves its queues in priority order (intake first) with RQ's scheduler."""

    def served_queues(self) -> tuple[str, ...]:
        return tuple(queue.name for queue in self.queues)

    def other_work_waiting(self) -> bool:
        """Jobs waiting on the other queues this worker serves. A worker of its own for intake,
        as the README advises for campaigns, never yields."""
        return any(queue.count for queue in self.queues if queue.name != "intake")

    def subscribe(self) -> None:
        """RQ's subscription to this worker's command channel, its thread waking every second."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # (RQ types it None)
            sleep_time=COMMANDS_WAKE_S, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def execute_job(self, job, queue):
        token = current_worker.set(self)
        try:
            return super().execute_job(job, queue)
        finally:
            current_worker.reset(token)


def build_worker(queue_names: list[str], name: str | None = None) -> WxsurveyWorker:
    """A worker on the named queues (needs an app context: the connection comes from the app)."""
    from app.jobs.queues import get_queue
    from app.redis_store import redis_store

    return WxsurveyWorker(
        [get_queue(q) for q in queue_names],
        connection=redis_store.raw,
        name=name or f"wxsurvey-{socket.gethostname()}-{os.getpid()}",
    )
