"""Many annotator processes on one PostgreSQL project at once: nothing acknowledged is lost
or stored twice, no image is handed to two annotators, and commit latency is reported.

The default suite runs 5 processes for ~10 s; ``-m slow`` runs 20 for ~40 s and kills one
with SIGKILL mid-run (its acknowledged edits stay, its lease runs out). Figures are printed
(``-s`` shows them) and written to ``$ANNOWIDGET_LOAD_REPORT`` when set.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from annowidget.store import Project

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from annowidget.store import Project

    root, user, start, stop = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    project = Project.open(root)
    project.user = user
    category = project.category("object")
    time.sleep(max(0.0, start - time.time()))
    last = None
    while time.time() < stop:
        image = project.next_unlabeled(after_id=last)
        if image is None:
            break
        last = image.id
        holder = project.lease_holder(image.id)
        print(json.dumps({"took": image.id, "holder": holder}), flush=True)
        for k in range(2):
            began = time.perf_counter()
            box = project.add_annotation(image.id, category.id, [k, k, 10, 10])
            # acknowledged: the call returned, so the edit is committed
            print(json.dumps({"ack": box.id, "ms": 1000 * (time.perf_counter() - began)}),
                  flush=True)
        began = time.perf_counter()
        project.set_status(image.id, "reviewed")
        print(json.dumps({"ms": 1000 * (time.perf_counter() - began)}), flush=True)
    project.close()
    """
)


def _project(tmp_path: Path, db: str, images: int) -> Path:
    (tmp_path / "images").mkdir()
    with Project.create(tmp_path / "shared", images_root=tmp_path / "images", db=db) as project:
        project.add_category("object")
        project.add_images_bulk(
            {"path": f"{i:05d}.jpg", "width": 640, "height": 480} for i in range(images)
        )
    return tmp_path / "shared"


def _run(root: Path, workers: int, seconds: float, *, kill_after: float | None = None) -> dict:
    start = time.time() + 3.0 + 0.15 * workers  # every process started and connected
    stop = start + seconds
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root), f"w{n}", str(start), str(stop)],
            env={**ENV, "ANNOWIDGET_LEASE_S": "8"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    killed = None
    if kill_after is not None:
        time.sleep(max(0.0, start + kill_after - time.time()))
        killed = procs[0]
        os.kill(killed.pid, signal.SIGKILL)
    taken: dict[str, list[int]] = {}
    holders_ok = True
    acks: list[int] = []
    latencies: list[float] = []
    for n, proc in enumerate(procs):
        out, err = proc.communicate(timeout=seconds + 120)
        if proc is not killed:
            assert proc.returncode == 0, err
        for line in out.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short by SIGKILL
            if "took" in event:
                taken.setdefault(f"w{n}", []).append(event["took"])
                holders_ok &= event["holder"] == f"w{n}"
            if "ack" in event:
                acks.append(event["ack"])
            if "ms" in event:
                latencies.append(event["ms"])
    return {
        "taken": taken,
        "holders_ok": holders_ok,
        "acks": acks,
        "latencies": latencies,
        "killed": None if killed is None else "w0",
    }


def _check_and_report(root: Path, result: dict, workers: int, seconds: float) -> dict:
    acks = result["acks"]
    with Project.open(root) as project:
        stored = [a.id for a in project.annotations()]
        adds = [a for a in project.actions() if a.action == "add"]
    assert len(acks) == len(set(acks)), "an id acknowledged twice"
    assert set(acks) <= set(stored), "an acknowledged edit was lost"
    assert len(stored) == len(set(stored))
    # every stored box was acknowledged, but for at most one a SIGKILL cut off mid-print
    assert len(stored) - len(acks) <= (1 if result["killed"] else 0)
    assert len(adds) == len(stored)  # one log row per edit, none twice
    taken = result["taken"]
    everyone = [i for ids in taken.values() for i in ids]
    killed_last = taken.get(result["killed"] or "", [None])[-1]
    twice = [i for i in set(everyone) if everyone.count(i) > 1 and i != killed_last]
    assert twice == [], f"images handed to two annotators: {twice}"
    assert result["holders_ok"], "an annotator did not hold the lease of its image"
    latencies = sorted(result["latencies"])
    report = {
        "workers": workers,
        "seconds": seconds,
        "acknowledged_edits": len(acks),
        "commits": len(latencies),
        "commits_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "images_taken": len(everyone),
        "lost": 0,
        "duplicated": 0,
        "double_leases": 0,
    }
    print("\nload:", json.dumps(report))
    if os.environ.get("ANNOWIDGET_LOAD_REPORT"):
        with open(os.environ["ANNOWIDGET_LOAD_REPORT"], "a", encoding="utf-8") as out:
            out.write(json.dumps(report) + "\n")
    return report


def test_five_annotators_for_ten_seconds(tmp_path: Path, postgres_db: str) -> None:
    root = _project(tmp_path, postgres_db, 3000)
    result = _run(root, 5, 10.0)
    report = _check_and_report(root, result, 5, 10.0)
    assert report["acknowledged_edits"] > 0


@pytest.mark.slow
def test_twenty_annotators_for_forty_seconds_one_killed(tmp_path: Path, postgres_db: str) -> None:
    root = _project(tmp_path, postgres_db, 10000)
    result = _run(root, 20, 40.0, kill_after=10.0)
    report = _check_and_report(root, result, 20, 40.0)
    assert report["acknowledged_edits"] > 0
    killed_image = result["taken"]["w0"][-1]
    with Project.open(root) as project:  # 30 s after the kill, its 8 s lease has run out
        assert project.lease_holder(killed_image) != "w0"
