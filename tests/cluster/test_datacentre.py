"""`make cluster-test`: the service on several nodes, under load, through three faults.

The data centre of tests/cluster/datacentre.py: nginx -> two web nodes, two worker nodes, two
scheduler nodes (two cron schedulers up at once), a Redis Cluster of three masters with a replica
each (ack_replicas = 1, four intake shards), RQ on a plain Redis, PostgreSQL. While citizens submit
through the load balancer it cuts web1's link, kills work1's processes and kills a Redis master
(its replica takes over). Then: every acknowledged answer is in SQL exactly once, each export
slot ran once, and four processes asking for the WeChat access token at once fetched it once.
Figures go to bench-results/cluster-*.json (CAPACITY.md quotes them).

Runs only when WXSURVEY_TEST_DATACENTRE=1 (make cluster-test; .ci/run runs the short form,
WXSURVEY_TEST_DATACENTRE_SECONDS=20); skipped with the reason where namespaces are unavailable.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime

import pytest

from tests.cluster.datacentre import PYTHON, ROOT, DataCentre, unavailable

SECONDS = float(os.environ.get("WXSURVEY_TEST_DATACENTRE_SECONDS", "45"))
CLI = [PYTHON, "-c", "from app.cli import main; main()"]

pytestmark = pytest.mark.skipif(
    os.environ.get("WXSURVEY_TEST_DATACENTRE") != "1", reason="the multi-node test runs by make cluster-test"
)


def test_acknowledged_answers_survive_a_web_cut_a_worker_kill_and_a_redis_failover():
    reason = unavailable()
    if reason:
        if os.environ.get("CI"):  # .ci/run runs it as root with nginx and iproute2 installed
            pytest.fail(f"no data centre on this machine: {reason}")
        pytest.skip(f"no data centre on this machine: {reason}")
    dc = DataCentre()
    try:
        figures = run(dc)
    finally:
        dc.stop()
    out = ROOT / "bench-results" / f"cluster-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    verdict = figures["verdict"]
    assert verdict["lost"] == 0 and verdict["doubled"] == 0, verdict
    assert verdict["acknowledged"] > 0 and verdict["in_sql"] == verdict["distinct_acknowledged"]
    assert verdict["export_slots"] >= 2 and verdict["export_slots_run_twice"] == 0
    assert verdict["token_fetches"] == 1


def run(dc: DataCentre) -> dict:
    dc.build_network()
    dc.start_postgres()
    dc.start_redis()
    config = dc.dir / "config.toml"
    config.write_text('[[exports.schedules]]\nname = "tick"\nsurvey = "demo-departments"\ninterval = 5\n')
    env = dc.env(config)
    dc.run("web1", [*CLI, "init"], env)
    dc.run("web1", [*CLI, "demo"], env)
    for i in (1, 2):
        dc.spawn(f"web{i}", [*CLI, "serve", "--host", dc.addr(f"web{i}"), "--port", "8000"], env, "web")
        dc.spawn(
            f"work{i}", [PYTHON, "worker.py", "--queues", "intake,wechat,default,exports"], env, "worker"
        )
        dc.spawn(f"sched{i}", [PYTHON, "worker.py", "--cron"], env, "cron")
    dc.start_nginx()
    lb = f"http://{dc.addr('lb')}:8080"
    for i in (1, 2):
        dc.wait(
            lambda i=i: (
                "ok" in dc.run("client", ["curl", "-sf", f"http://{dc.addr(f'web{i}')}:8000/healthz"])
            ),
            f"web{i}",
        )
    dc.wait(lambda: "ok" in dc.run("client", ["curl", "-sf", f"{lb}/healthz"]), "the load balancer")

    acks = dc.dir / "acks.txt"
    started = time.time()
    load = dc.spawn(
        "client", [PYTHON, "-m", "tests.cluster.load", lb, str(SECONDS), "8", str(acks)], env, "load"
    )
    faults: dict[str, dict] = {}
    step = SECONDS / 4

    def at(offset: float) -> None:
        time.sleep(max(0.0, started + offset - time.time()))

    at(step)
    faults["web1_link_cut"] = {"at": round(time.time() - started, 1)}
    dc.cut("web1")
    at(2 * step)
    faults["work1_killed"] = {"at": round(time.time() - started, 1)}
    dc.kill("work1")
    at(3 * step)
    victim = dc.masters()[0]
    faults["redis_master_killed"] = {"at": round(time.time() - started, 1), "port": victim}
    killed = time.monotonic()
    dc.kill_redis(victim)
    dc.wait(
        lambda: (
            victim not in dc.masters()
            and len(dc.masters()) == 3
            and "cluster_state:ok" in dc.cluster("cluster", "info")
        ),
        "a replica to take over",
        timeout=60,
    )
    faults["redis_master_killed"]["cluster_ok_after_s"] = round(time.monotonic() - killed, 1)
    load.wait(timeout=SECONDS + 60)
    ended = time.time()

    # Four processes on four nodes ask for the WeChat access token at the same moment.
    threads = [
        threading.Thread(target=dc.run, args=(node, [*CLI, "wechat", "token"], env))
        for node in ("web2", "work2", "sched1", "sched2")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    check = [PYTHON, "-m", "tests.cluster.check"]
    drained = dc.wait(
        lambda: json.loads(dc.run("client", check, env)) == {"backlog": 0, "pending": 0},
        "the drains to empty every shard",
        timeout=180,
    )
    verdict = json.loads(dc.run("client", [*check, str(acks)], env))
    lines = [line.split() for line in acks.read_text().splitlines()]
    for fault in faults.values():
        window = [
            (float(t), who)
            for t, who in lines
            if started + fault["at"] <= float(t) < started + fault["at"] + step
        ]
        oks = [t for t, who in window if not who.startswith("-")]
        fault["acknowledged_in_window"] = len(oks)
        acked_here = {who for _, who in window if not who.startswith("-")}
        fault["lost_in_window"] = len(acked_here & set(verdict["lost_ids"]))
        fault["doubled_in_window"] = len(acked_here & set(verdict["doubled_ids"]))
        fault["in_sql_in_window"] = len(oks) - fault["lost_in_window"]
        fault["failed_in_window"] = len(window) - len(oks)
        fault["recovered_after_s"] = round(oks[0] - started - fault["at"], 2) if oks else None
        gaps = [b - a for a, b in zip(oks, oks[1:], strict=False)]
        fault["longest_gap_s"] = round(max(gaps), 2) if gaps else None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(ended - started, 1),
        "submissions_per_s": round(verdict["acknowledged"] / (ended - started), 1),
        "failed_requests": sum(1 for _, who in lines if who.startswith("-")),
        "drained_after_load_s": round(drained, 1),
        "faults": faults,
        "verdict": verdict,
    }
