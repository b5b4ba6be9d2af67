"""The RQ worker entry point: builds the app, pushes its context, serves the named queues.

`python worker.py [--queues ...] [--burst] [--name N]` is `wxsurvey worker` (app/cli/worker.py,
where the worker's behaviour lives: app/jobs/worker.py); `python worker.py --cron` runs the cron
scheduler for the periodic jobs of app/schedule.py.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from app.cli import main as cli_main

    cli_main(["worker", *(sys.argv[1:] if argv is None else argv)])  # exits with the command's status
    return 0


if __name__ == "__main__":
    sys.exit(main())
