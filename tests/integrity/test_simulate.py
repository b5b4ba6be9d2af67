"""`wxsurvey simulate campaign`: a small labelled campaign through the real intake path, on a
scratch database and Redis of its own; its figures and its one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from app.cli.integrity import simulate
from app.integrity.campaign import KINDS, Campaign, Options


def test_campaign_events_are_labelled_and_reproducible():
    codes = [f"D{i:02d}" for i in range(1, 26)]
    one = Campaign(Options(seed=7, days=3, organic_per_day=100, incidents=1), codes).build()
    two = Campaign(Options(seed=7, days=3, organic_per_day=100, incidents=1), codes).build()
    assert [(e.ms, e.kind, e.openid) for e in one] == [(e.ms, e.kind, e.openid) for e in two]
    labels = {e.label for e in one if e.kind == "answer"}
    assert labels == {"organic", *KINDS}
    assert [e.ms for e in one] == sorted(e.ms for e in one)
    bought = [e for e in one if e.label == "bought_followers"]
    assert {e.kind for e in bought} == {"subscribe", "answer", "unsubscribe"}


def test_simulate_campaign_prints_precision_and_recall(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        simulate,
        ["campaign", "--days", "3", "--organic-per-day", "120", "--incidents", "1", "--seed", "3", "--json",
         "--kinds", "office,bought_followers", "--keep", str(tmp_path / "sim")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert set(figures["kinds"]) == {"office", "bought_followers"}
    assert figures["tally_differences"] == 0  # `tallies verify` after every move
    assert figures["organic"]["answers"] > 200
    assert figures["organic"]["share"] < 0.05
    assert 0 <= figures["precision"] <= 1 and 0 <= figures["recall"] <= 1
    assert figures["kinds"]["bought_followers"]["recall"] > 0.5
    assert figures["organic_by_department"]
    text = runner.invoke(simulate, ["campaign", "--kinds", "rigged"])
    assert text.exit_code != 0 and "unknown kind rigged" in text.output
