# gunicorn settings for wxsurvey's web server: `gunicorn -c /etc/wxsurvey/gunicorn.conf.py app.wsgi:app`
# (deploy/systemd/wxsurvey-web.service). The settings `wxsurvey serve` uses and BENCHMARKS.md
# measured: app/ops/web_worker.py's worker (gthread's request handling, threads that take their own
# events), app.web_workers x app.web_threads, --reuse-port, the keep-alive; here also the workers'
# recycling (max_requests).
import os

from app.cli.supervisor import KEEPALIVE_SECONDS
from app.cli.supervisor import reuse_port as reuse_port_for
from app.config import load_settings

_settings = load_settings()  # WXSURVEY_CONFIG and the unit's EnvironmentFile, as the app reads them

# Where nginx reaches the app. Keep it on loopback (or a private address when nginx runs elsewhere):
# /metrics is answered without a token only to internal addresses.
bind = [f"{_settings.app.host}:{_settings.app.port}"]

# BENCHMARKS.md: one process per core; 32 threads each (app.web_threads), since a citizen's first
# visit holds a thread for WeChat's OAuth code exchange (80 ms or more, no CPU): with 4 threads,
# 2 processes took at most 8 / 0.08 s = 100 new citizens a second whatever the cores could do.
worker_class = "app.ops.web_worker.ThreadWorker"  # listening only while it can answer
workers = int(_settings.app.web_workers)
threads = int(_settings.app.web_threads)

# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads connections over them;
# without it one worker can take every keep-alive connection of nginx's upstream pool while the
# other idles. The worker class opens that socket once the app is loaded and, when the worker stops,
# answers what reaches it for up to graceful_timeout / 2 before closing it. Connections queued on a
# worker that dies outright are still reset, so nginx retries once (deploy/nginx-wxsurvey.conf). A
# single worker keeps its master's socket, which outlives a replacement (app/cli/supervisor.py).
reuse_port = reuse_port_for(workers)

# A request is given 30 s (exports and imports in the console are the slow ones); WeChat's 5 s budget
# is enforced in front, by nginx. On SIGTERM / restart a worker finishes its requests for up to 10 s.
timeout = 30
graceful_timeout = 10
keepalive = KEEPALIVE_SECONDS  # longer than nginx's upstream keepalive_timeout (60 s): nginx closes first

# Recycle workers now and then (memory fragmentation over months of uptime), staggered.
max_requests = 200_000
max_requests_jitter = 20_000

# Access log on standard output (journald); the app's own log on standard error. With
# app.log_format = "json" the app logs one JSON object a line with the request id and duration,
# so gunicorn's access log is off there (GUNICORN_ACCESS_LOG=- in the environment keeps both).
_json_logs = _settings.app.log_format == "json"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", None if _json_logs else "-")
errorlog = "-"
if _json_logs:  # gunicorn's own lines (booting, worker exits) in the same JSON shape as the app's
    from app.ops.logs import gunicorn_logconfig

    logconfig_dict = gunicorn_logconfig()
proc_name = "wxsurvey-web"
# gunicorn's control socket (gunicornc: add or remove workers, reload; since gunicorn 25.1 on by
# default, in /var/lib/wxsurvey/.gunicorn/ here) is not used: systemctl manages the service. Off,
# nothing that can reach that directory can resize or reload the web server.
control_socket_disable = True
forwarded_allow_ips = "127.0.0.1,::1"  # gunicorn's own view; the app believes app.trusted_proxies


def post_worker_init(worker):
    # The app is loaded and the worker's socket open (app/ops/web_worker.py): it answers from now on.
    worker.log.info("Worker ready to serve (pid: %s)", worker.pid)


def child_exit(server, worker):
    # Prometheus multiprocess mode: a dead worker's live gauges stop counting (its counters stay).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
