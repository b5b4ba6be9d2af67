# RQ job of the stuffing detector: every minute, answers by new followers who have since unfollowed
# are scored again and quarantined when over the threshold (the rest runs inside the drain).
from __future__ import annotations

import time
from typing import Any


def sweep_leavers() -> dict[str, Any]:
    from flask import current_app

    from app.db import db
    from app.integrity.quarantine import sweep_leavers as sweep
    from app.jobs.intake import integrity_detector
    from app.redis_store import redis_store

    detector = integrity_detector(current_app.config["SETTINGS"])
    if detector is None:
        return {"quarantined": 0}
    moved = sweep(db.session, redis_store.client, detector, int(time.time() * 1000))
    db.session.commit()
    return {"quarantined": moved}
