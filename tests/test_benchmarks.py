"""The benchmark machinery end to end in its smoke mode (not a timed test: no figure is judged)."""

from __future__ import annotations

from benchmarks import run
from benchmarks.big_models import GPU_BIG_ROWS
from benchmarks.cases import GPU_ROWS
from benchmarks.long_video import rows_declared as long_video_rows
from benchmarks.plan_memory import rows_declared

ROWS = ["1a", "1b", "2a", "2b", "2c", "3a", "3b", "3c", "4a", "4b", "5a", "5b", "5c", *(key for key, _ in GPU_ROWS),
        "7a", "7b", "7c", "7d", "7e", "7f", *(key for key, _ in GPU_BIG_ROWS), "9a", "9b", "9c", "9d", "9e", "9f",
        *(key for key, _ in rows_declared()), *(key for key, _ in long_video_rows())]


def test_smoke_run_prints_and_writes_every_row(tmp_path, tiny_model, capsys):
    report = tmp_path / "BENCHMARKS.md"

    assert run.main(["--smoke", "--output", str(report)]) == 0

    printed = capsys.readouterr().out
    keys = [line.split("|")[1].strip() for line in printed.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    assert keys == ROWS
    assert "error:" not in printed
    for number in [*"123456789", "10"]:
        assert f"- Goal {number}." in printed
    written = report.read_text()
    assert printed.split("\n\n")[0] in written  # the same table
    assert "## Machine" in written and "torch threads" in written
    assert "## Real latents" in written and "limit_drift" in written
