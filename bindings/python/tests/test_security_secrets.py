# test_security_secrets.py: no provider key reaches a Python object (docs/security.md §5, decision 0013).
#
# The key comes from the environment through the config's `secrets`; the fake vendor
# (build/tests/troupe-fake-vendor) echoes it in streamed text cut inside it, in reasoning, in a
# tool call's id, name and arguments in pieces, as the request id and in a long error message;
# the workflow holds it too and logs, raises and returns it. No run of 12 bytes of it, in any
# form, may be in the events, the result, the exceptions, show(), events() or runs().
import json
import os
import subprocess
import urllib.parse

import pytest

import troupe
from conftest import BUILD_DIR

KEY = 'sk-proj-Py7hOnK3y/9fQxZr+Lm0p"Wv7\\AbCdEfGh=IjKlMnOpQrStUvWx'
KEY_ENV = "TROUPE_PY_SECURITY_TEST_OPENAI_KEY"
FRAGMENT = 12  # log::kSecretFragment


def forms(key):
    escaped = json.dumps(key)[1:-1]
    return [key, escaped, escaped.replace("/", "\\/"),
            urllib.parse.quote(key, safe="-._~"), urllib.parse.quote(key, safe="-._~").lower()]


def leak(text):
    """What leaked: a run of FRAGMENT bytes of some form of KEY in text, or None."""
    for form in forms(KEY):
        for i in range(len(form) - FRAGMENT + 1):
            if form[i:i + FRAGMENT] in text:
                return form[i:i + FRAGMENT]
    return None


def scenario():
    k, escaped = KEY, json.dumps(KEY)[1:-1]
    deltas = [
        {"content": "Your key: " + k[:20]},
        {"content": k[20:] + " (keep it)"},
        {"reasoning_content": "thinking about " + k[:15]},
        {"reasoning_content": k[15:]},
        {"tool_calls": [{"index": 0, "id": k[:30], "type": "function",
                         "function": {"name": k[:25], "arguments": '{"k": "' + escaped[:9]}}]},
        {"tool_calls": [{"index": 0, "id": k[30:],
                         "function": {"name": k[25:], "arguments": escaped[9:29]}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": escaped[29:] + '"}'}}]},
    ]
    return {"rules": [
        {"match": "stream-me", "openai_deltas": deltas, "request_id": "req-" + k},
        {"match": "fail-me", "fault": "http-400", "request_id": "req-" + k,
         "error_message": "x" * 480 + " " + k + " " + "y" * 2000},
    ]}


WORKFLOW = """
local troupe = require("troupe")
local KEY = [==[%s]==]
local function leaks(s)
  s = tostring(s or "")
  for i = 1, #KEY - 11 do
    if s:find(KEY:sub(i, i + 11), 1, true) then return true end
  end
  return false
end
return troupe.workflow{ name = "py_leaky", run = function(input)
  local a = troupe.agent{ name = "leaky", model = "openai/gpt-4o", history = false }
  local text, reasoning, args, ids, names = {}, {}, {}, {}, {}
  for ev in a:stream("stream-me") do
    if ev.type == "text_delta" then text[#text + 1] = ev.text
    elseif ev.type == "reasoning_delta" then reasoning[#reasoning + 1] = ev.text
    elseif ev.type == "tool_call_delta" then
      args[#args + 1] = ev.arguments; ids[#ids + 1] = ev.id or ""; names[#names + 1] = ev.name or ""
    end
  end
  local ok, err = pcall(function() return a:ask("fail-me") end)
  troupe.log(KEY)
  local saw = { input = leaks(input.k), text = leaks(table.concat(text)),
                reasoning = leaks(table.concat(reasoning)), arguments = leaks(table.concat(args)),
                ids = leaks(table.concat(ids)), names = leaks(table.concat(names)),
                error = leaks(err.text) }
  if input.raise then error("giving up on " .. KEY .. " " .. troupe.json.encode(saw)) end
  return { saw = saw, key = KEY, nested = { { KEY } } }
end }
""" % KEY


@pytest.fixture
def vendor(tmp_path_factory):
    path = tmp_path_factory.mktemp("vendor") / "scenario.json"  # holds the key: not searched
    path.write_text(json.dumps(scenario()))
    binary = os.path.join(BUILD_DIR, "tests", "troupe-fake-vendor")
    if not os.path.exists(binary):
        pytest.fail(f"{binary} is missing: build the troupe_fake_vendor target")
    proc = subprocess.Popen([binary, "--scenario", str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    yield line.split()[-1].strip()
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.fixture
def host(tmp_path, vendor, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    h = troupe.Host({
        "store": str(tmp_path / "troupe.db"),
        "providers": {"openai": {"plugin": "openai", "settings": {"base_url": vendor + "/v1"},
                                 "secrets": {"api_key": KEY_ENV}}},
    })
    yield h
    h.close()


def clean(what, value):
    text = value if isinstance(value, str) else repr(value)
    assert leak(text) is None, f"{what} holds a piece of the key: {text[:2000]}"
    return value


def test_a_key_echoed_every_way_reaches_no_python_object(host, tmp_path):
    run = host.run_source(WORKFLOW, input={"k": KEY})
    events = clean("the events", [(e.type, e.step_key, e.data) for e in run])
    result = clean("the result", run.result())
    assert result["saw"] == {name: False for name in result["saw"]}, "the workflow saw the key"
    assert result["key"] == "[REDACTED]" and result["nested"] == [["[REDACTED]"]]
    assert any(t == "log" and d.get("message") == "[REDACTED]" for t, _, d in events)

    failing = host.run_source(WORKFLOW, input={"raise": True})
    with pytest.raises(troupe.WorkflowError) as raised:
        failing.result()
    clean("the exception", str(raised.value))
    clean("the exception's fields", vars(raised.value))
    assert "giving up on [REDACTED]" in str(raised.value)
    assert '"text":false' in str(raised.value), "the workflow saw the key"

    for r in (run, failing):
        clean("show()", host.show(r.id))
        clean("events()", [(e.type, e.step_key, e.data) for e in host.events(r.id)])
        clean("outcome", r._native.outcome())
    clean("runs()", host.runs())
    for name in os.listdir(tmp_path):
        clean(name, (tmp_path / name).read_bytes().decode("latin-1"))


def test_an_exception_from_the_native_module_is_redacted(host, tmp_path):
    with pytest.raises(troupe.ConfigError) as raised:
        troupe.Host({"store": str(tmp_path / "other.db"), "providers": {KEY: {"plugin": 7}}})
    clean("the ConfigError", str(raised.value))
    assert "[REDACTED]" in str(raised.value)
