# conftest.py: shared fixtures of the troupe Python tests — hosts on temporary stores, paths.
import os
import sys

import pytest

SOURCE_DIR = os.environ.get("TROUPE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD_DIR = os.environ.get("TROUPE_BUILD_DIR", "")
WORKFLOWS = os.path.join(SOURCE_DIR, "scripts", "workflows")

import troupe  # noqa: E402  (PYTHONPATH=<build>/python, set by CTest)


def mock_config(tmp_path, rules=None, latency_ms=0, name="troupe.db"):
    """A configuration with every provider on the mock plugin and the store under tmp_path."""
    settings = {"latency_ms": latency_ms}
    if rules:
        settings["rules"] = rules
    return {
        "store": str(tmp_path / name),
        "providers": {"mock": {"plugin": "mock", "settings": settings}},
        "fallback_provider": "mock",
    }


@pytest.fixture
def host(tmp_path):
    h = troupe.Host(mock_config(tmp_path))
    yield h
    h.close()


def lua(body, name="t"):
    """A workflow as source text: `body` is the body of run(input)."""
    return ('local troupe = require("troupe")\n'
            f'return troupe.workflow{{ name = "{name}", run = function(input)\n{body}\nend }}\n')


def python_env():
    env = dict(os.environ)
    return env


PYTHON = sys.executable
