# test_host.py: troupe.Host and troupe.Run — runs, events, results, errors, cancel, the store.
import json
import os
import subprocess
import textwrap
import threading
import time

import pytest

import troupe
from conftest import PYTHON, WORKFLOWS, lua, mock_config

PR_REVIEW = os.path.join(WORKFLOWS, "pr_review.lua")
SLEEPY = lua("troupe.sleep(input.seconds or 30)\nreturn 'woke'", name="sleepy")


def test_module_reports_its_version_and_finds_the_plugins_of_the_build(host):
    assert troupe.__version__
    names = {p["name"]: p for p in host.plugins() if p.get("name")}
    assert "mock" in names
    assert names["mock"]["kind"] == "provider"
    assert any(d.endswith("plugins") for d in host.plugin_search_path())


def test_run_of_a_workflow_file_streams_its_events_and_returns_the_output(host):
    run = host.run(PR_REVIEW)
    events = list(run)
    types = [e.type for e in events]
    assert types[0] == "run.started"
    assert types[-1] == "run.finished"
    assert "step.started" in types and "step.finished" in types and "join.started" in types
    assert all(e.run_id == run.id for e in events)
    finished = [e for e in events if e.type == "step.finished"]
    assert {e.step_key for e in finished} == {"1", "2.1/1", "2.2/1", "3"}
    assert all(isinstance(e.data, dict) and e.ts_ms > 0 for e in events)
    assert any(e.type == "log" and "review ready" in e.data.get("message", "") for e in events)
    output = run.result()
    assert isinstance(output, str) and "Review" in output
    assert run.done() and run.status == troupe.RunStatus.SUCCEEDED and run.status == "succeeded"


def test_run_of_source_text_receives_the_input_and_returns_python_data(host):
    run = host.run_source(lua("return { echo = input, n = #input.items, ok = true }"),
                   input={"items": [1, 2, 3], "name": "x"})
    assert run.result(timeout=30) == {"echo": {"items": [1, 2, 3], "name": "x"}, "n": 3, "ok": True}


def test_a_failing_workflow_raises_workflow_error_with_the_lua_traceback(host):
    run = host.run_source(lua("local function inner() error('boom at the bottom') end\ninner()", name="bad"),
                   name="bad.lua")
    with pytest.raises(troupe.WorkflowError) as info:
        run.result(timeout=30)
    e = info.value
    assert e.status == "failed"
    assert e.run_id == run.id
    assert "boom at the bottom" in e.message
    assert e.traceback.startswith("stack traceback:")
    assert "inner" in e.traceback
    assert not isinstance(e, troupe.RunCancelled)
    assert host.show(run.id)["status"] == "failed"


def test_a_script_that_does_not_compile_fails_its_run_with_the_line(host):
    run = host.run_source("return troupe.workflow{ name = \n")
    with pytest.raises(troupe.WorkflowError) as info:
        run.result(timeout=30)
    assert "<string>" in info.value.message


def test_cancel_stops_a_running_workflow_and_records_it_cancelled(host):
    run = host.run_source(SLEEPY)
    assert next(iter(run)).type == "run.started"
    t0 = time.monotonic()
    assert run.cancel() is True  # it was running: it ended cancelled
    assert run.done() and run.status == troupe.RunStatus.CANCELLED
    with pytest.raises(troupe.RunCancelled) as info:
        run.result(timeout=10)
    assert time.monotonic() - t0 < 5
    assert info.value.status == "cancelled" and info.value.status is troupe.RunStatus.CANCELLED
    assert host.show(run.id)["status"] == "cancelled"
    assert [e.type for e in run][-1] == "run.finished"
    assert run.cancel() is False  # already over


def test_cancel_of_a_run_that_already_ended_returns_false_and_changes_nothing(host):
    run = host.run_source(lua("return 'done'"))
    assert run.result(timeout=30) == "done"
    assert run.cancel() is False
    assert run.status == "succeeded"
    assert host.show(run.id)["status"] == "succeeded"


def test_run_takes_a_path_and_run_source_takes_lua_text(host, tmp_path):
    script = tmp_path / "echo.lua"
    script.write_text(lua("return input.word", name="echo"))
    assert host.run(script, input={"word": "path"}).result(timeout=30) == "path"
    assert host.run(str(script), input={"word": "str"}).result(timeout=30) == "str"
    with pytest.raises(FileNotFoundError) as info:
        host.run(lua("return 1"))  # source text is not a path any more
    assert "run_source()" in str(info.value)
    with pytest.raises(TypeError):
        host.run_source(script)  # a path is not source text
    run = host.run_source(lua("error('named')"), name="mine.lua")
    with pytest.raises(troupe.WorkflowError) as err:
        run.result(timeout=30)
    assert "mine.lua" in err.value.message
    assert host.show(run.id)["source"] == "mine.lua"


def test_codes_are_named_enums_equal_to_their_strings(host):
    RunStatus, EventType = troupe.RunStatus, troupe.EventType
    assert [s.value for s in RunStatus] == [
        "queued", "running", "waiting", "interrupted", "succeeded", "failed", "cancelled"]
    assert RunStatus.FAILED == "failed" and str(RunStatus.FAILED) == "failed"
    assert f"{EventType.STEP_FINISHED}" == "step.finished" and json.dumps([EventType.LOG]) == '["log"]'
    run = host.run(PR_REVIEW)
    types = [e.type for e in run]
    assert all(isinstance(t, EventType) for t in types)
    assert types[0] is EventType.RUN_STARTED and types[-1] is EventType.RUN_FINISHED
    assert run.status is RunStatus.SUCCEEDED
    assert [r["id"] for r in host.runs(status=RunStatus.SUCCEEDED)] == [run.id]
    stored = host.events(run.id)
    assert stored[0].type is EventType.RUN_STARTED


def test_result_with_a_timeout_raises_timeout_error_while_the_run_goes_on(host):
    run = host.run_source(SLEEPY)
    with pytest.raises(TimeoutError):
        run.result(timeout=0.2)
    assert not run.done()
    run.cancel()
    assert run.wait(10)


def test_events_with_a_timeout_raise_timeout_error_when_nothing_happens(host):
    run = host.run_source(SLEEPY)
    with pytest.raises(TimeoutError):
        for _ in run.events(timeout=0.3):
            pass
    run.cancel()


def test_waiting_releases_the_gil_so_other_python_threads_run(host):
    run = host.run_source(SLEEPY, input={"seconds": 0.5})
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        assert run.result(timeout=30) == "woke"
    finally:
        stop.set()
        t.join()
    assert counter[0] > 10000  # a held GIL would leave it near zero


def test_waiting_does_not_busy_poll(host):
    run = host.run_source(SLEEPY, input={"seconds": 1.0})
    cpu0 = time.process_time()
    assert run.result(timeout=30) == "woke"
    assert time.process_time() - cpu0 < 0.5  # a second of waiting; a busy loop burns ~1 s


CTRL_C_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    import troupe
    host = troupe.Host({"store": sys.argv[1], "providers": {"mock": {"plugin": "mock"}},
                        "fallback_provider": "mock"})
    run = host.run_source('local troupe = require("troupe")\\nreturn troupe.workflow{ name = "long", '
                   'run = function() troupe.sleep(60) end }')
    def interrupt():
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.monotonic()
    try:
        if sys.argv[2] == "iterate":
            for ev in run:
                pass
        else:
            run.result()
        print(json.dumps({"outcome": "no interrupt"}))
    except KeyboardInterrupt:
        took = time.monotonic() - t0
        print(json.dumps({"outcome": "KeyboardInterrupt", "after": took, "run": run.id,
                          "status": host.show(run.id)["status"]}))
    host.close()
""")


@pytest.mark.parametrize("how", ["iterate", "result"])
def test_ctrl_c_while_waiting_cancels_the_run_and_raises_keyboard_interrupt(tmp_path, how):
    proc = subprocess.run([PYTHON, "-c", CTRL_C_SCRIPT, str(tmp_path / "c.db"), how],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "KeyboardInterrupt"
    assert report["after"] < 5  # interrupted at 0.5 s, the run sleeps 60 s
    assert report["status"] == "cancelled"


def test_runs_lists_recent_runs_newest_first_with_filters(host):
    ok = host.run_source(lua("return 1", name="one"))
    ok.result(timeout=30)
    bad = host.run_source(lua("error('x')", name="two"))
    with pytest.raises(troupe.WorkflowError):
        bad.result(timeout=30)
    runs = host.runs()
    assert [r["id"] for r in runs[:2]] == [bad.id, ok.id]
    assert runs[0]["status"] == "failed" and runs[1]["output"] == 1
    assert [r["id"] for r in host.runs(status="succeeded")] == [ok.id]
    assert [r["id"] for r in host.runs(workflow="two")] == [bad.id]
    assert len(host.runs(limit=1)) == 1


def test_show_returns_the_run_and_its_steps_in_execution_order(host):
    run = host.run(PR_REVIEW)
    run.result(timeout=30)
    details = host.show(run.id[:10])  # a unique prefix is enough
    assert details["id"] == run.id and details["status"] == "succeeded"
    assert [s["step_key"] for s in details.steps] == ["1", "2.1/1", "2.2/1", "3"]
    first = details.steps[0]
    assert first["kind"] == "chat" and first["agent"] == "leader" and first["model"].startswith("anthropic/")
    assert first["input_tokens"] > 0 and first["output_tokens"] > 0
    assert isinstance(first["request"], dict) and isinstance(first["response"], dict)
    with pytest.raises(troupe.RunNotFound):
        host.show("no-such-run")


def test_to_pandas_gives_dataframes_of_runs_and_steps(host):
    pd = pytest.importorskip("pandas")
    run = host.run(PR_REVIEW)
    run.result(timeout=30)
    runs = host.runs().to_pandas()
    assert isinstance(runs, pd.DataFrame)
    assert list(runs["id"]) == [run.id]
    assert {"workflow", "status", "created", "duration_ms"} <= set(runs.columns)
    steps = host.show(run.id).to_pandas()
    assert list(steps["step_key"]) == ["1", "2.1/1", "2.2/1", "3"]
    for column in ["kind", "agent", "model", "status", "latency_ms", "input_tokens",
                   "output_tokens", "cost_usd"]:
        assert column in steps.columns
    assert steps["input_tokens"].sum() > 0
    assert set(steps["agent"]) == {"leader", "coder", "security"}


def test_stored_events_of_a_run_come_back_in_order(host):
    run = host.run(PR_REVIEW)
    run.result(timeout=30)
    events = host.events(run.id)
    assert events[0].type == "run.started" and events[-1].type == "run.finished"
    assert any(e.type == "join.started" and e.step_key == "2" for e in events)


def test_a_missing_workflow_file_is_file_not_found(host):
    with pytest.raises(FileNotFoundError):
        host.run("no/such/workflow.lua")


def test_configuration_errors_name_the_problem(tmp_path):
    with pytest.raises(troupe.ConfigError) as info:
        troupe.Host(config=str(tmp_path / "missing.yaml"))
    assert "missing.yaml" in str(info.value)
    with pytest.raises(troupe.ConfigError) as info:
        troupe.Host({"store": str(tmp_path / "x.db"), "providers": {"mock": {"plugin": 42}}})
    assert "providers.mock.plugin" in str(info.value)
    assert issubclass(troupe.ConfigError, troupe.TroupeError)


def test_a_yaml_configuration_file_is_used(tmp_path):
    cfg = tmp_path / "troupe.yaml"
    cfg.write_text("store: runs.db\nproviders:\n  mock: { plugin: mock }\nfallback_provider: mock\n")
    with troupe.Host(config=cfg) as h:
        assert h.store_path == str(tmp_path / "runs.db")
        assert h.config_path == str(cfg)
        h.run_source(lua("return 'ok'")).result(timeout=30)
    assert (tmp_path / "runs.db").exists()


def test_closing_the_host_cancels_its_running_runs(tmp_path):
    h = troupe.Host(mock_config(tmp_path))
    run = h.run_source(SLEEPY)
    assert next(iter(run)).type == "run.started"
    h.close()
    assert h.closed
    with pytest.raises(troupe.RunCancelled):
        run.result(timeout=10)
    with pytest.raises(troupe.TroupeError):
        h.run_source(SLEEPY)
    with troupe.Host(mock_config(tmp_path)) as again:  # the record says so
        assert again.show(run.id)["status"] == "cancelled"


def test_two_hosts_in_one_process_run_side_by_side_with_their_own_stores(tmp_path):
    a = troupe.Host(mock_config(tmp_path, name="a.db"))
    b = troupe.Host(mock_config(tmp_path, name="b.db"))
    try:
        slow_a = a.run_source(SLEEPY, input={"seconds": 0.5})
        fast_b = b.run(PR_REVIEW)
        assert "Review" in fast_b.result(timeout=30)
        assert not slow_a.done()  # b's loop did not wait for a's
        assert slow_a.result(timeout=30) == "woke"
        assert [r["id"] for r in a.runs()] == [slow_a.id]
        assert [r["id"] for r in b.runs()] == [fast_b.id]

        @a.tool
        def only_on_a() -> str:
            return "a"

        wf = lua("local t = troupe.host_tool('only_on_a')\nreturn t.name")
        assert a.run_source(wf).result(timeout=30) == "only_on_a"
        with pytest.raises(troupe.WorkflowError) as info:
            b.run_source(wf).result(timeout=30)
        assert "no host tool named 'only_on_a'" in info.value.message
    finally:
        a.close()
        b.close()


def test_many_runs_at_once_each_get_their_own_events(host):
    runs = [host.run_source(lua(f"troupe.sleep(0.05)\nreturn {i}")) for i in range(20)]
    assert [r.result(timeout=30) for r in runs] == list(range(20))
    for r in runs:
        events = list(r)
        assert {e.run_id for e in events} == {r.id}
        assert events[0].type == "run.started" and events[-1].type == "run.finished"


def test_show_and_runs_carry_the_cost_of_each_model_call_from_the_pricing_table(tmp_path):
    config = mock_config(tmp_path)
    config["pricing"] = {"mock/priced": {"input": 1000, "output": 2000}}
    h = troupe.Host(config)
    try:
        run = h.run_source(lua("return { troupe.agent{ model = 'mock/priced' }:ask('hello there'),"
                               " troupe.agent{ model = 'mock/free' }:ask('hi') }"))
        run.result(timeout=30)
        steps = h.show(run.id).steps
        priced, free = steps[0], steps[1]
        assert priced["input_tokens"] > 0 and priced["output_tokens"] > 0
        want = (priced["input_tokens"] * 1000 + priced["output_tokens"] * 2000) / 1e6
        assert priced["cost_usd"] == pytest.approx(want)
        assert priced["unpriced"] is False
        assert priced["cached_input_tokens"] == 0 and priced["reasoning_tokens"] == 0
        assert free["cost_usd"] == 0.0 and free["unpriced"] is False  # the mock costs nothing
        assert h.runs()[0]["cost_usd"] == pytest.approx(want)
        pd = pytest.importorskip("pandas")
        frame = h.show(run.id).to_pandas()
        assert isinstance(frame, pd.DataFrame)
        assert frame["cost_usd"].sum() == pytest.approx(want)
        assert {"cached_input_tokens", "reasoning_tokens", "cache_write_tokens",
                "unpriced"} <= set(frame.columns)
    finally:
        h.close()
