"""A WSGI app for tests/ops/test_web_worker.py whose loading and answers the test controls.

Importing it writes `loading-<pid>` into WEB_WORKER_TEST_DIR and waits until `loaded` exists there
(a worker loading a big app, for as long as the test wants). `/pid` answers the worker's pid;
`/hold` appends the pid to `holding` and answers only once `release` exists (a request in flight).
"""

import os
import time
from pathlib import Path

_DIR = Path(os.environ["WEB_WORKER_TEST_DIR"])


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.01)


(_DIR / f"loading-{os.getpid()}").touch()
_wait_for(_DIR / "loaded")


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        with open(_DIR / "holding", "a") as holding:
            holding.write(f"{os.getpid()}\n")
        _wait_for(_DIR / "release")
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
