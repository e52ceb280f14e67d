# test_security_isolation.py: two runs in one Python Host — run A tries every way it has to
# read or change run B (library functions, metatables, prompts, answers, step keys, events);
# B's journal is the same as when it runs alone (docs/security.md, class 4).
import json

import troupe
from conftest import lua, mock_config

VICTIM = lua("""
local a = troupe.agent{ name = "victim", system = "secret-prompt-of-b" }
local first = a:ask("what is two plus two")
troupe.sleep(0.05)
troupe.log("victim heard", first)
local second = a:ask("and three plus three")
return { first = first, second = second, json = troupe.json.encode(troupe.json.decode("[1,2]")),
         history = #a:history(), now = type(troupe.now()) }
""", name="victim")

ATTACKER = lua("""
local tried = {}
local function try(what, f)
  local ok, err = pcall(f)
  tried[#tried + 1] = what .. (ok and ": CHANGED" or ": refused")
end
local forged = function() return "forged" end
try("json.encode", function() troupe.json.encode = forged end)
try("json.decode", function() rawset(troupe.json, "decode", forged) end)
try("log", function() troupe.log.info = forged end)
try("http", function() troupe.http.get = forged end)
try("agent metatable", function() getmetatable(troupe.agent{ name = "x" }).__index.ask = forged end)
try("agent index", function() troupe.agent{ name = "x" }.__index.ask = forged end)
try("tool index", function() troupe.tool{ name = "t", run = forged }.__index.run = forged end)
try("array metatable", function() getmetatable(troupe.json.decode("[]")).__index = forged end)
try("string metatable", function() getmetatable("").__index = forged end)
try("library via pairs", function()
  for _, v in pairs(troupe) do if type(v) == "table" then v.ask = forged end end
end)
try("finalizer", function() setmetatable({}, { __gc = function() troupe.log("in B?") end }) end)
-- Keep going while B runs: anything A reaches must stay A's.
for i = 1, 20 do troupe.sleep(0.01); troupe.log("attacker tick", i) end
return tried
""", name="attacker")


def journal(host, run_id):
    rows = []
    for s in host.show(run_id).steps:
        request = s["request"]
        if isinstance(request, dict):
            request = dict(request)
            request.get("metadata", {}).pop("run_id", None)
        response = s["response"]
        if isinstance(response, dict):
            response = {k: v for k, v in response.items() if k not in ("request_id", "unix_ms")}
        rows.append((s["step_key"], s["kind"], s["agent"], s["model"], s["status"],
                     json.dumps(request, sort_keys=True), json.dumps(response, sort_keys=True)))
    return rows


def event_shape(host, run_id):
    return [(e.type, e.step_key) for e in host.events(run_id)]


def test_a_run_cannot_change_another_run_in_the_same_host(tmp_path):
    alone_host = troupe.Host(mock_config(tmp_path, name="alone.db"))
    try:
        alone = alone_host.run_source(VICTIM)
        alone_output = alone.result(timeout=60)
        alone_journal = journal(alone_host, alone.id)
        alone_events = event_shape(alone_host, alone.id)
    finally:
        alone_host.close()

    host = troupe.Host(mock_config(tmp_path, name="shared.db"))
    try:
        attacker = host.run_source(ATTACKER)
        victim = host.run_source(VICTIM)
        tried = attacker.result(timeout=60)
        assert all(t.endswith("refused") for t in tried), tried
        assert victim.result(timeout=60) == alone_output
        assert journal(host, victim.id) == alone_journal
        assert event_shape(host, victim.id) == alone_events
        # And nothing of B reached A: A's events name only A's own run and keys.
        for e in host.events(attacker.id):
            assert "secret-prompt-of-b" not in json.dumps(e.data)
            assert "victim" not in json.dumps(e.data)
    finally:
        host.close()
