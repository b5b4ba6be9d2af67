"""A WSGI app for tests/ops/test_web_worker.py whose loading and answers the test controls.

Importing it waits until the file named by WEB_WORKER_TEST_LOADED exists (a worker loading a big
app, for as long as the test wants). `/pid` answers the worker's pid; `/hold` writes the pid to
WEB_WORKER_TEST_HOLDING and answers only once WEB_WORKER_TEST_RELEASE exists (a request in flight).
"""

import os
import time
from pathlib import Path

_LOADED = Path(os.environ["WEB_WORKER_TEST_LOADED"])
_HOLDING = Path(os.environ["WEB_WORKER_TEST_HOLDING"])
_RELEASE = Path(os.environ["WEB_WORKER_TEST_RELEASE"])


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.01)


_wait_for(_LOADED)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        _HOLDING.write_text(str(os.getpid()))
        _wait_for(_RELEASE)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
