# The baseline endpoints, served by the same gunicorn settings as the real app, so every
# throughput figure has a same-run ceiling to be compared with:
#   /       a constant response from a bare Flask app (the ceiling of any Flask endpoint);
#   /redis  a floor for any Redis-backed form handler: reads the url-encoded form, opens the
#           signed session, makes one EVALSHA round trip to the Redis of WXSURVEY_BENCH_BARE_REDIS_URL.
import os

from flask import Flask, request, session

app = Flask(__name__)
app.secret_key = "bench-bare"
_redis = None
_INCR = "redis.call('INCR', KEYS[1]) return 1"


@app.route("/", methods=["GET", "POST"])
def constant():
    return "ok"


@app.route("/redis", methods=["GET", "POST"])
def form_session_redis():
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(os.environ["WXSURVEY_BENCH_BARE_REDIS_URL"])
        _redis.script_load(_INCR)
    request.form.get("a")
    session.get("x")
    _redis.evalsha(_sha(), 1, "bench:bare")
    return "ok"


def _sha() -> str:
    import hashlib

    return hashlib.sha1(_INCR.encode()).hexdigest()
