# The benchmark table in BENCHMARKS.md: a run rewrites its own figures and keeps everyone else's
# (bench-results/ is local to a checkout; the committed table is the record).
from bench.harness import TABLE_END, TABLE_START, write_table

MACHINE = {"cpu": "Test CPU", "cores": 2, "memory_gib": 23.5, "date": "2026-12-05 07:00 UTC"}


def _row(name: str, value: float, ok: bool) -> dict:
    return {"name": name, "value": value, "unit": "us", "baseline": 10.0, "baseline_name": "plain",
            "ratio": value / 10, "target": "<= 1.10 x", "ok": ok, "machine": MACHINE}  # fmt: skip


def test_a_run_replaces_its_figures_and_keeps_the_others_and_the_prose(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nprose before\n\n" + TABLE_START + "\n| figure |\n|---|\n"
                  "| a.old | 1 | x | – | – | – | yes | Old CPU | 2026-12-01 |\n"
                  "| c.kept | 3 | x | – | – | – | **NO** | Old CPU | 2026-12-01 |\n"
                  + TABLE_END + "\n\nprose after\n")  # fmt: skip

    write_table([_row("a.old", 10.5, True), _row("b.new", 12.0, False)], md)

    text = md.read_text()
    assert text.startswith("# Benchmarks\n\nprose before\n\n") and text.endswith("\n\nprose after\n")
    body = text.split(TABLE_START)[1].split(TABLE_END)[0].strip().splitlines()
    assert body[0].startswith("| figure | value |") and len(body) == 5
    names = [line.split("|")[1].strip() for line in body[2:]]
    assert names == ["a.old", "b.new", "c.kept"]
    assert body[2].startswith("| a.old | 10 | us | 10 (plain) | 1.050 |") and "Test CPU" in body[2]
    assert "| yes |" in body[2]
    assert "| **NO** |" in body[3]
    assert body[4] == "| c.kept | 3 | x | – | – | – | **NO** | Old CPU | 2026-12-01 |"


def test_a_file_without_a_table_gets_one_at_its_end(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nno table yet\n")
    write_table([_row("a", 11.0, False)], md)
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\nno table yet\n\n" + TABLE_START)
    assert "| a | 11.000 |" not in text and "| a | 11 |" in text and text.rstrip().endswith(TABLE_END)
