# test_resume.py: Host.resume — a run whose process was killed is taken over from Python and
# ends as it would have, its journaled steps served; runs that cannot be resumed say why.
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import troupe
from conftest import PYTHON, lua, mock_config

WORKFLOW = lua('''
  local writer = troupe.agent{ name = "writer", model = "mock/m1" }
  local out = {}
  for i = 1, 6 do out[#out + 1] = writer:ask("part " .. i) end
  return out''', name="resumable")

# A child process runs the workflow on the same store, then is killed mid-way.
CHILD = '''
import json, sys, troupe
host = troupe.Host(json.loads(sys.argv[1]))
run = host.run_source(sys.argv[2], name="resumable")
print(run.id, flush=True)
run.wait()
'''


def test_a_killed_run_is_resumed_from_python_and_serves_its_journal(tmp_path):
    config = mock_config(tmp_path, latency_ms=150)
    child = subprocess.Popen([PYTHON, "-c", CHILD, json.dumps(config), WORKFLOW],
                             stdout=subprocess.PIPE, text=True)
    run_id = child.stdout.readline().strip()
    with troupe.Host(config) as host:
        deadline = time.monotonic() + 30
        while len(host.show(run_id)["steps"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        journaled = len(host.show(run_id)["steps"])
        assert 2 <= journaled < 6
        run = host.resume(run_id)
        output = run.result(timeout=60)
        assert output == [f"{i}" for i in output]  # strings, one per part
        assert len(output) == 6
        events = [e.type for e in host.events(run_id)]
        assert troupe.EventType.RUN_RESUMED in events
        finished = [e for e in host.events(run_id) if e.type == "run.finished"][-1]
        assert finished.data["served_steps"] == journaled
        assert finished.data["epoch"] == 2
        assert host.show(run_id)["status"] == "succeeded"


def test_a_run_that_ended_is_refused_with_the_reason(host):
    run = host.run_source(WORKFLOW, name="resumable")
    run.result(timeout=30)
    with pytest.raises(troupe.ResumeRefused, match="it has ended \\(succeeded\\)"):
        host.resume(run.id)
    with pytest.raises(troupe.ResumeRefused, match="no run 'nope'"):
        host.resume("nope")


def test_submitted_runs_are_driven_by_two_python_workers_exactly_once(tmp_path):
    wf = tmp_path / "queued.lua"
    wf.write_text(lua('''
  local a = troupe.agent{ name = "a", model = "mock/m1", history = false }
  return a:ask("hello " .. input.n)''', name="queued"))
    config = mock_config(tmp_path)
    with troupe.Host(config) as submitter:
        ids = [submitter.submit(wf, {"n": n}) for n in range(20)]
        assert all(submitter.show(i)["status"] == "queued" for i in ids)
    # Two hosts on one store: each run is claimed by exactly one of them.
    with troupe.Host(config) as one, troupe.Host(config) as two:
        import threading
        counts = {}
        threads = [threading.Thread(target=lambda h=h, k=k: counts.__setitem__(k, h.work(once=True)))
                   for k, h in (("one", one), ("two", two))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert counts["one"] + counts["two"] == 20
        for run_id in ids:
            details = one.wait(run_id, timeout=10)
            assert details["status"] == "succeeded"
            assert details["epoch"] == 1
        with pytest.raises(TimeoutError):
            one.wait(one.submit(wf, {"n": 99}), timeout=0.2)


def test_signals_and_approvals_reach_a_running_workflow_from_python(host):
    run = host.run_source(lua('''
  local go = troupe.wait_signal("go", 30)
  local d = troupe.approve{ title = "merge?", choices = { "merge", "close" } }
  return { go = go.n, choice = d.choice, by = d.by, comment = d.comment }''', name="gate"))
    deadline = time.monotonic() + 30
    host.signal(run.id, "go", {"n": 7})
    while not host.approvals(run.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    [pending] = host.approvals(run.id)
    assert pending["request"]["title"] == "merge?"
    with pytest.raises(ValueError):
        host.approve(run.id, choice="maybe")
    decided = host.approve(run.id, pending["key"], choice="merge", comment="lgtm", by="ana")
    assert decided["decided_now"] is True
    assert run.result(timeout=30) == {"go": 7, "choice": "merge", "by": "ana", "comment": "lgtm"}
    again = host.approve(run.id, pending["key"], choice="close", by="bob")
    assert again["decided_now"] is False and again["choice"] == "merge"


def test_replay_and_fork_from_python(host, tmp_path):
    wf = tmp_path / "three.lua"
    wf.write_text(lua('''
  local a = troupe.agent{ name = "a", model = "mock/m1", history = false }
  return { a:ask("one"), a:ask("two"), a:ask("three") }''', name="three"))
    recorded = host.run(wf)
    output = recorded.result(timeout=30)
    assert host.replay(recorded.id).result(timeout=30) == output
    edited = tmp_path / "edited.lua"
    edited.write_text(wf.read_text().replace('a:ask("two")', 'a:ask("deux")'))
    with pytest.raises(troupe.WorkflowError, match="replay: step 2 does not match the journal"):
        host.replay(recorded.id, edited).result(timeout=30)
    child = host.fork(recorded.id, "2")
    assert child.result(timeout=30) == output
    assert host.show(child.id)["parent"] == {"run_id": recorded.id, "step": "2"}
    with pytest.raises(troupe.ResumeRefused, match="has no step 9"):
        host.fork(recorded.id, "9")
