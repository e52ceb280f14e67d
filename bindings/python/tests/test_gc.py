# test_gc.py: Host.gc — deleting old runs from Python, by the rules of `troupe gc`: ended runs
# only, with their steps and events, the configuration's retention as the default, and a run
# of the same host journaling meanwhile.
import sqlite3
import time

import pytest

import troupe
from conftest import lua, mock_config

DAY_MS = 24 * 60 * 60 * 1000
QUICK = lua("troupe.now()\ntroupe.log('working')\nreturn 'ok'", name="quick")
FAILING = lua("troupe.now()\nerror('boom')", name="failing")
SLEEPY = lua("troupe.sleep(30)\nreturn 'woke'", name="sleepy")


def age(host, run_id, days):
    """Moves a run `days` into the past (a test cannot wait a month for it)."""
    host.runs()  # flushes the host's writes
    ms = days * DAY_MS
    db = sqlite3.connect(host.store_path)
    try:
        with db:
            db.execute("UPDATE runs SET created_ms = created_ms - ?,"
                       " finished_ms = CASE WHEN finished_ms > 0 THEN finished_ms - ? ELSE 0 END"
                       " WHERE id = ?", (ms, ms, run_id))
    finally:
        db.close()


def finished(host, source):
    run = host.run_source(source)
    run.wait(timeout=60)
    return run


def journal_size(host, run_id):
    return len(host.show(run_id)["steps"]), len(host.events(run_id))


def test_gc_deletes_old_ended_runs_with_their_steps_and_events_and_keeps_recent_ones(host):
    ok, bad, recent = finished(host, QUICK), finished(host, FAILING), finished(host, QUICK)
    assert ok.status == "succeeded" and bad.status == "failed"
    sizes = [journal_size(host, r.id) for r in (ok, bad)]
    assert all(steps >= 1 and events >= 2 for steps, events in sizes)
    age(host, ok.id, 40)
    age(host, bad.id, 40)
    before = time.time() * 1000

    result = host.gc("30d")

    assert result == {"runs": 2, "steps": sum(s for s, _ in sizes),
                      "events": sum(e for _, e in sizes), "dry_run": False,
                      "cutoff_ms": result["cutoff_ms"]}
    assert abs(result["cutoff_ms"] - (before - 30 * DAY_MS)) < 60_000
    for gone in (ok, bad):
        with pytest.raises(troupe.RunNotFound):
            host.show(gone.id)
    assert [r["id"] for r in host.runs()] == [recent.id]
    assert journal_size(host, recent.id)[0] >= 1


def test_gc_dry_run_counts_and_deletes_nothing(host):
    run = finished(host, QUICK)
    steps, events = journal_size(host, run.id)
    age(host, run.id, 40)
    result = host.gc("30d", dry_run=True)
    assert {k: v for k, v in result.items() if k != "cutoff_ms"} == {
        "runs": 1, "steps": steps, "events": events, "dry_run": True}
    assert journal_size(host, run.id) == (steps, events)


def test_gc_status_deletes_only_the_given_statuses(host):
    ok, bad = finished(host, QUICK), finished(host, FAILING)
    age(host, ok.id, 40)
    age(host, bad.id, 40)
    assert host.gc("30d", status="failed")["runs"] == 1
    assert [r["id"] for r in host.runs()] == [ok.id]
    assert host.gc("30d", status=[troupe.RunStatus.CANCELLED])["runs"] == 0
    assert host.gc("30d", status=[troupe.RunStatus.SUCCEEDED, "failed"])["runs"] == 1
    assert len(host.runs()) == 0


def test_gc_keeps_a_running_run_however_old(host):
    run = host.run_source(SLEEPY)
    time.sleep(0.2)
    age(host, run.id, 40)
    assert host.gc("0s")["runs"] == 0
    assert host.show(run.id)["status"] == "running"
    assert run.cancel()


def test_gc_refuses_a_bad_duration_naming_it(host):
    for bad in ("30", "3x", "1h30m", "30D", "-1d", ""):
        with pytest.raises(ValueError, match=f"older_than: '{bad}'"):
            host.gc(bad)
    with pytest.raises(TypeError, match="older_than"):
        host.gc(30)


def test_gc_refuses_a_status_that_is_not_ended(host):
    with pytest.raises(ValueError, match="'running' is not a status gc deletes"):
        host.gc("30d", status="running")


def test_gc_without_an_age_takes_the_configurations_retention(tmp_path):
    config = mock_config(tmp_path)
    config["retention"] = {"older_than": "7d", "status": ["failed"]}
    with troupe.Host(config) as h:
        ok, bad = finished(h, QUICK), finished(h, FAILING)
        age(h, ok.id, 10)
        age(h, bad.id, 10)
        assert h.gc(None)["runs"] == 1  # only the failed one: the configuration's status
        assert [r["id"] for r in h.runs()] == [ok.id]
        assert h.gc(None, status="succeeded")["runs"] == 1  # an argument wins


def test_gc_without_an_age_anywhere_says_how_to_give_one(host):
    with pytest.raises(ValueError, match="older_than"):
        host.gc(None)


def seed_old_runs(store_path, n, rows_each):
    """n runs that ended 40 days ago, each with rows_each steps and events, written directly."""
    at = int(time.time() * 1000) - 40 * DAY_MS
    db = sqlite3.connect(store_path)
    try:
        with db:
            db.executemany(
                "INSERT INTO runs (id, workflow, status, created_ms, finished_ms)"
                " VALUES (?, 'seeded', 'succeeded', ?, ?)",
                [(f"old-{i}", at - 1000, at) for i in range(n)])
            db.executemany(
                "INSERT INTO steps (run_id, step_key, kind, status) VALUES (?, ?, 'now', 'succeeded')",
                [(f"old-{i}", str(k)) for i in range(n) for k in range(rows_each)])
            db.executemany(
                "INSERT INTO events (run_id, ts_ms, type) VALUES (?, ?, 'log')",
                [(f"old-{i}", at) for i in range(n) for _ in range(rows_each)])
    finally:
        db.close()


def test_gc_of_a_thousand_runs_while_a_run_of_the_same_host_journals(host):
    host.runs()  # the store exists and has its schema
    seed_old_runs(host.store_path, 1000, 10)
    run = host.run_source(lua("troupe.log('started')\n"
                              "for i = 1, 100 do troupe.sleep(0.01) end\nreturn 'done'",
                              name="busy"))
    for ev in run:
        if ev.type == "log":
            break

    result = host.gc("30d")

    assert (result["runs"], result["steps"], result["events"]) == (1000, 10000, 10000)
    assert run.result(timeout=120) == "done"
    assert len(host.show(run.id)["steps"]) == 100
    assert [r["id"] for r in host.runs()] == [run.id]
