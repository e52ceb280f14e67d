# test_tools.py: Python functions as tools of Lua agents (@host.tool, troupe.host_tool).
import enum
import threading
import time
from typing import Dict, List, Literal, Optional

import pytest

import troupe
from conftest import lua, mock_config

WEATHER_RULE = {"match": "weather", "tool_calls": [
    {"name": "weather", "arguments": {"city": "Oslo"}},
    {"name": "weather", "arguments": {"city": "Rome", "units": "F"}}]}

AGENT_RUN = """
local troupe = require("troupe")
local assistant = troupe.agent{ name = "assistant", model = "mock/m", tools = TOOLS }
return troupe.workflow{ name = "tools", run = function(input)
  local text = assistant:run(input.question, { max_turns = 3 })
  return text
end }
"""


def agent_workflow(tools_lua='{ "weather" }'):
    return AGENT_RUN.replace("TOOLS", tools_lua)


@pytest.fixture
def tool_host(tmp_path):
    rules = [WEATHER_RULE,
             {"match": "explode", "tool_calls": [{"name": "explode", "arguments": {"why": "testing"}}]},
             {"match": "badargs", "tool_calls": [{"name": "weather", "arguments": {"city": 42}}]},
             {"match": "slow", "tool_calls": [{"name": "slow", "arguments": {}}]}]
    h = troupe.Host(mock_config(tmp_path, rules=rules))
    yield h
    h.close()


def test_schema_comes_from_the_signature_type_hints_and_docstring():
    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"

    def f(city: str, days: int, ratio: float, metric: bool, tags: List[str], extra: Dict[str, int],
          note: Optional[str] = None, mode: Literal["fast", "slow"] = "fast", color: Color = Color.RED,
          anything=None):
        """Forecast for a city.

        Args:
            city: the city's name
            days (int): how many days
                ahead, at most 10
        """

    s = troupe.tool_schema(f)
    p = s["properties"]
    assert s["type"] == "object" and s["additionalProperties"] is False
    assert s["required"] == ["city", "days", "ratio", "metric", "tags", "extra"]
    assert p["city"] == {"type": "string", "description": "the city's name"}
    assert p["days"] == {"type": "integer", "description": "how many days ahead, at most 10"}
    assert p["ratio"] == {"type": "number"} and p["metric"] == {"type": "boolean"}
    assert p["tags"] == {"type": "array", "items": {"type": "string"}}
    assert p["extra"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert p["note"] == {"type": ["string", "null"]}
    assert p["mode"] == {"enum": ["fast", "slow"], "default": "fast"}
    assert p["color"]["enum"] == ["red", "blue"]
    assert p["anything"] == {}
    assert "additionalProperties" not in troupe.tool_schema(lambda a, **more: None)


def test_bare_decorator_registers_the_function_under_its_name(tool_host):
    @tool_host.tool
    def weather(city: str, units: str = "C") -> dict:
        """Current weather of a city."""
        return {"city": city}

    assert weather("x") == {"city": "x"}  # the function is returned unchanged
    assert "weather" in tool_host.tools
    info = tool_host.run_source(lua("local t = troupe.host_tool('weather')\n"
                             "return { name = t.name, description = t.description, parameters = t.parameters }"))
    out = info.result(timeout=30)
    assert out["name"] == "weather"
    assert out["description"] == "Current weather of a city."
    assert out["parameters"]["required"] == ["city"]
    assert out["parameters"]["properties"]["units"]["type"] == "string"


def test_explicit_name_description_and_parameters_are_used(tool_host):
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

    @tool_host.tool(name="search-docs", description="Searches the docs.", parameters=schema)
    def anything(q):
        return [q]

    out = tool_host.run_source(lua("local t = troupe.host_tool('search-docs')\n"
                            "return { t.description, t.parameters.required[1] }")).result(timeout=30)
    assert out == ["Searches the docs.", "q"]


def test_invalid_tool_names_and_schemas_are_refused(tool_host):
    with pytest.raises(ValueError):
        tool_host.tool(lambda: 1, name="has space")
    with pytest.raises(ValueError):
        tool_host.tool(lambda: 1, name="ok", parameters={"type": "string"})


def test_a_lua_agent_calls_python_tools_through_agent_run(tool_host):
    calls = []

    @tool_host.tool
    def weather(city: str, units: Optional[str] = "C") -> dict:
        """Current weather of a city."""
        calls.append((city, units, threading.current_thread() is threading.main_thread()))
        return {"city": city, "temperature": 4, "units": units}

    run = tool_host.run_source(agent_workflow(), input={"question": "weather in Oslo and Rome?"})
    answer = run.result(timeout=30)
    assert sorted(calls) == [("Oslo", "C", False), ("Rome", "F", False)]  # on worker threads
    assert '{"city": "Oslo", "temperature": 4, "units": "C"}' in answer
    assert '"city": "Rome"' in answer
    steps = {s["step_key"]: s for s in tool_host.show(run.id).steps}
    assert steps["2.1/1"]["kind"] == "tool" and steps["2.1/1"]["agent"] == "weather"
    assert steps["2.1/1"]["status"] == "succeeded"
    assert "Oslo" in steps["2.1/1"]["response"]["result"]
    assert steps["3"]["kind"] == "chat"


def test_a_raising_python_tool_becomes_a_tool_error_the_model_reads(tool_host):
    @tool_host.tool
    def explode(why: str) -> str:
        raise RuntimeError(f"exploded while {why}")

    run = tool_host.run_source(agent_workflow('{ "explode" }'), input={"question": "explode please"})
    answer = run.result(timeout=30)  # the run itself succeeds: the model got the error
    assert "error: tool 'explode' failed: RuntimeError: exploded while testing" in answer
    step = tool_host.show(run.id).steps[1]
    assert step["kind"] == "tool" and step["status"] == "failed"
    assert "RuntimeError: exploded while testing" in step["error"]


def test_arguments_that_break_the_schema_never_reach_the_python_function(tool_host):
    called = []

    @tool_host.tool
    def weather(city: str) -> str:
        called.append(city)
        return city

    answer = tool_host.run_source(agent_workflow(), input={"question": "badargs"}).result(timeout=30)
    assert "invalid arguments for tool 'weather'" in answer
    assert called == []


def test_the_loop_keeps_running_other_branches_while_a_python_tool_works(tool_host):
    @tool_host.tool
    def slow() -> str:
        time.sleep(1.0)
        return "done"

    wf = lua("""
      local agent = troupe.agent{ name = "a", model = "mock/m", tools = { "slow" } }
      return troupe.parallel(
        function() return agent:run("slow please") end,
        function() troupe.sleep(0.05) return "quick" end)
    """)
    run = tool_host.run_source(wf)
    finished = [e.step_key for e in run if e.type == "step.finished"]
    run.result(timeout=30)
    assert finished.index("1.2/1") < finished.index("1.1/2")  # the sleep, before the tool


def test_async_python_functions_work_as_tools(tool_host):
    @tool_host.tool
    async def weather(city: str) -> dict:
        return {"city": city, "async": True}

    answer = tool_host.run_source(agent_workflow(), input={"question": "weather?"}).result(timeout=30)
    assert '"async": true' in answer


def test_an_unknown_host_tool_fails_the_run_naming_the_registered_ones(tool_host):
    @tool_host.tool
    def known() -> str:
        return ""

    with pytest.raises(troupe.WorkflowError) as info:
        tool_host.run_source(agent_workflow('{ "unknown_tool" }')).result(timeout=30)
    assert "no host tool named 'unknown_tool'" in info.value.message
    assert "known" in info.value.message


def test_the_same_tool_serves_many_runs_at_once(tool_host):
    count = [0]
    lock = threading.Lock()

    @tool_host.tool
    def weather(city: str, units: str = "C") -> str:
        with lock:
            count[0] += 1
        time.sleep(0.05)
        return city

    runs = [tool_host.run_source(agent_workflow(), input={"question": "weather"}) for _ in range(6)]
    for r in runs:
        assert "Oslo" in r.result(timeout=60)
    assert count[0] == 12
