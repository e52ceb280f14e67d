# test_dead_letters.py: retries and dead letters from Python — a call that keeps failing is tried
# as its policy says, each attempt in Host.show; the run is then a dead letter that
# Host.replay_dead_letter re-drives (its finished steps served) and Host.discard_dead_letter drops.
import pytest

import troupe
from conftest import lua

FAILING = lua('''
  local a = troupe.agent{ name = "a", model = "mock/m1", history = false }
  local b = troupe.agent{ name = "b", model = "mock/error-server", history = false,
                          retry = { attempts = 2, initial = 0.01 } }
  return { a:ask("one"), b:ask("two") }''', name="dead")


def test_a_run_whose_retries_ran_out_is_a_dead_letter_to_replay_or_discard(host):
    run = host.run_source(FAILING, name="dead")
    with pytest.raises(troupe.WorkflowError, match="after 2 attempts"):
        run.result(timeout=30)

    dead = host.dead_letters()
    assert [d["run_id"] for d in dead] == [run.id]
    assert dead[0]["reason"] == "retries_exhausted"
    assert dead[0]["step_key"] == "2"
    assert dead[0]["attempts"] == 2
    letter = host.dead_letter(run.id)
    assert [a["attempt"] for a in letter["failed_attempts"]] == [1]
    assert letter["failed_attempts"][0]["status"] == "unavailable"
    steps = host.show(run.id)["steps"]
    assert [s["attempts"] for s in steps] == [1, 2]

    # The model still fails: the replay asks only step 2 again, with its attempts anew.
    again = host.replay_dead_letter(run.id)
    with pytest.raises(troupe.WorkflowError, match="after 4 attempts"):
        again.result(timeout=30)
    finished = [e for e in host.events(run.id) if e.type == "run.finished"][-1]
    assert finished.data["served_steps"] == 1
    assert host.dead_letter(run.id)["attempts"] == 4

    assert host.discard_dead_letter(run.id) is True
    assert host.dead_letters() == []
    assert host.dead_letter(run.id) is None
    assert host.discard_dead_letter(run.id) is False
    with pytest.raises(troupe.RunNotFound):
        host.dead_letter("no-such-run")


def test_a_retry_policy_that_cannot_be_is_an_error_at_the_workflows_line(host):
    run = host.run_source(lua('''
  local a = troupe.agent{ name = "a", model = "mock/m1", retry = { backoff = 0.5 } }
  return a:ask("x")'''), name="bad")
    with pytest.raises(troupe.WorkflowError,
                       match=r"bad:4: troupe.agent: retry: 'backoff' must be between 1 and 100"):
        run.result(timeout=30)
