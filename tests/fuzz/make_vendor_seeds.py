#!/usr/bin/env python3
"""make_vendor_seeds.py: writes the vendor decoder seeds (corpus/<vendor>_wire/) from the fake
vendor server's real replies (tests/support/vendor_*.cpp).

  python3 tests/fuzz/make_vendor_seeds.py <build>/tests/troupe-fake-vendor

Each seed is one byte of mode (0: a non-streamed body, 1: a stream; tests/fuzz/wire_fuzz.h)
and then the bytes the server sent: answers with text, tool calls, reasoning, the vendors'
finish reasons and the body faults (stream-error, malformed-json, utf8-split, no-terminator).
"""
import json
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"

SCENARIO = {
    "rules": [
        {"match": "weather", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                                            {"name": "get_time", "arguments": {"tz": "CET"}}]},
        {"match": "think", "reply": "après réflexion: 42", "reasoning": "let me think step by step"},
        {"match": "long", "reply": "cut short", "finish": "length"},
        {"match": "unsafe", "reply": "", "finish": "content_filter"},
        {"match": "odd-finish", "reply": "odd", "vendor_finish": "pause_turn"},
    ]
}

TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def request(vendor, model, prompt, stream, tools):
    """The path and body of one chat request in the vendor's own format."""
    messages = [{"role": "user", "content": prompt}]
    if vendor == "openai":
        body = {"model": model, "messages": messages, "stream": stream}
        if tools:
            body["tools"] = [{"type": "function", "function": {"name": "get_weather",
                                                               "parameters": TOOL_SCHEMA}}]
        return "/v1/chat/completions", body
    if vendor == "anthropic":
        body = {"model": model, "max_tokens": 100, "messages": messages, "stream": stream}
        if tools:
            body["tools"] = [{"name": "get_weather", "input_schema": TOOL_SCHEMA}]
        if prompt == "structured":
            body["tools"] = [{"name": "structured_output", "input_schema": TOOL_SCHEMA}]
            body["tool_choice"] = {"type": "tool", "name": "structured_output"}
        return "/v1/messages", body
    if vendor == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        if tools:
            body["tools"] = [{"functionDeclarations": [{"name": "get_weather",
                                                        "parameters": TOOL_SCHEMA}]}]
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/v1beta/models/{model}:{verb}", body
    body = {"model": model, "messages": messages, "stream": stream}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "get_weather",
                                                           "parameters": TOOL_SCHEMA}}]
    return "/api/chat", body


def fetch(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:  # error bodies are seeds too
        return e.read()
    except (urllib.error.URLError, ConnectionError):  # a fault that cuts the connection
        return None


def main():
    server = subprocess.Popen([sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    base = server.stdout.readline().split()[-1]
    scenario = urllib.request.Request(base + "/_fake/scenario", data=json.dumps(SCENARIO).encode(),
                                      headers={"content-type": "application/json"})
    urllib.request.urlopen(scenario).read()
    cases = [("plain", "model-1", "hello there", False), ("tools", "model-1", "weather?", True),
             ("reasoning", "model-1", "think about it", False),
             ("length", "model-1", "long", False), ("filtered", "model-1", "unsafe", False),
             ("odd_finish", "model-1", "odd-finish", False),
             ("structured", "model-1", "structured", False)]
    for fault in ("stream-error", "malformed-json", "utf8-split", "no-terminator", "http-400",
                  "context-too-long"):
        cases.append((fault.replace("-", "_"), "fault-" + fault, "hello", False))
    for vendor in ("openai", "anthropic", "gemini", "ollama"):
        folder = CORPUS / f"{vendor}_wire"
        folder.mkdir(parents=True, exist_ok=True)
        for name, model, prompt, tools in cases:
            if name == "structured" and vendor != "anthropic":
                continue
            for stream in (False, True):
                path, body = request(vendor, model, prompt, stream, tools)
                reply = fetch(base, path, body)
                if not reply:
                    continue
                mode = b"\x01" if stream else b"\x00"
                suffix = "stream" if stream else "body"
                (folder / f"{name}_{suffix}").write_bytes(mode + reply)
    server.stdin.close()
    server.wait(timeout=10)


if __name__ == "__main__":
    main()
