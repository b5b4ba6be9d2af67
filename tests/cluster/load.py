"""The data centre's citizens: `python -m tests.cluster.load URL SECONDS THREADS OUT` (run inside the
client namespace). Each thread submits questionnaires through the load balancer, one new respondent
per submission, four departments in turn; every answer that got its thank-you page is written to OUT
as `time openid`, every failure as `time -status`. Stops when SECONDS have passed or OUT.stop exists.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.intake import ANSWERS, _session_cookies
from tests.cluster.datacentre import SECRET_KEY

CODES = ("D04", "D02", "D05", "D08")


def citizen(url: str, until: float, index: int, out, lock: threading.Lock, stop: Path) -> None:
    from app.intake import issue_form_token

    parts = urlsplit(url)
    cookies = _session_cookies(SECRET_KEY)
    conn = None
    n = 0
    while time.time() < until and not stop.exists():
        n += 1
        openid = f"c{index}-{n}"
        path = f"/q/demo-departments/{CODES[n % len(CODES)]}"
        cookie = cookies.dumps({"wx_openid": openid, "wx_channel": "wechat"})
        body = urlencode({**ANSWERS, "form_token": issue_form_token(SECRET_KEY, time.time() - 60)})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"session={cookie}"}
        try:
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
            conn.request("POST", path, body, headers)
            reply = conn.getresponse()
            page = reply.read().decode("utf-8", "replace")
            ok = reply.status == 200 and "感谢您的评价" in page
            line = f"{time.time():.3f} {openid}" if ok else f"{time.time():.3f} -{reply.status}"
        except (OSError, http.client.HTTPException) as exc:
            line = f"{time.time():.3f} -{type(exc).__name__}"
            conn = None
        with lock:
            out.write(line + "\n")
            out.flush()


def main() -> None:
    url, seconds, threads, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    until = time.time() + seconds
    lock = threading.Lock()
    stop = path.with_suffix(".stop")
    with open(path, "w") as out:
        workers = [
            threading.Thread(target=citizen, args=(url, until, i, out, lock, stop)) for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


if __name__ == "__main__":
    main()
