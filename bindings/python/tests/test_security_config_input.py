# test_security_config_input.py: hostile input and configuration through the Python module —
# each raises a Python exception naming where the problem is, and the interpreter and the host
# live on (docs/security.md, class 7; the CLI's side is tests/security/config_input_test.cpp).
import pytest

import troupe
from conftest import lua

ECHO = lua("return 'ok'", name="echo")


def nested(depth):
    value = 7
    for _ in range(depth):
        value = [value]
    return value


def still_runs(host):
    assert host.run_source(ECHO).result(timeout=30) == "ok"


def test_input_nested_300_levels_is_a_value_error_naming_the_key(host):
    with pytest.raises(ValueError) as info:
        host.run_source(ECHO, input={"tree": nested(300)})
    assert "input:1:" in str(info.value)
    assert "input.tree[0][0]" in str(info.value)
    assert "nested deeper than 200 levels" in str(info.value)
    still_runs(host)


def test_input_text_nested_100k_levels_is_a_value_error_not_a_crash(host):
    # Straight to the native module, as any caller of it can: json.dumps never gets to make
    # text this deep, so the native check is what stands between it and the runtime.
    with pytest.raises(ValueError) as info:
        host._native.start("", ECHO, "<string>", "[" * 100_000 + "]" * 100_000)
    assert "nested deeper than 200 levels" in str(info.value)
    still_runs(host)


def test_input_with_infinity_is_a_value_error(host):
    with pytest.raises(ValueError) as info:
        host.run_source(ECHO, input={"ratio": float("inf")})
    assert "input.ratio" in str(info.value)
    still_runs(host)


def test_input_of_50_mb_is_a_value_error(host):
    with pytest.raises(ValueError) as info:
        host.run_source(ECHO, input={"text": "x" * (50 << 20)})
    assert "at most 16 MiB" in str(info.value)
    still_runs(host)


def test_input_with_a_duplicate_key_is_a_value_error(host):
    with pytest.raises(ValueError) as info:
        host._native.start("", ECHO, "<string>", '{\n "who": 1,\n "who": 2\n}')
    assert "input:3:" in str(info.value) and "duplicate key 'who'" in str(info.value)
    still_runs(host)


def test_config_with_a_duplicate_key_is_a_config_error_naming_file_and_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(f"store: {tmp_path / 'a.db'}\nstore: {tmp_path / 'b.db'}\n")
    with pytest.raises(troupe.ConfigError) as info:
        troupe.Host(str(path))
    assert "dup.yaml:2:1: store: duplicate key 'store' (first at line 1)" in str(info.value)


def test_config_with_a_billion_laughs_is_a_config_error(tmp_path):
    lines = ["providers:", "  mock:", "    plugin: mock", "    settings:",
             "      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 11):
        lines.append(f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(troupe.ConfigError) as info:
        troupe.Host(str(path))
    assert "laughs.yaml:" in str(info.value) and "more than 100000 values" in str(info.value)


def test_config_limit_that_would_wrap_is_a_config_error(tmp_path):
    with pytest.raises(troupe.ConfigError) as info:
        troupe.Host({"store": str(tmp_path / "t.db"), "limits": {"max_memory_mb": 2 ** 44}})
    assert "limits.max_memory_mb" in str(info.value) and "1048576" in str(info.value)
