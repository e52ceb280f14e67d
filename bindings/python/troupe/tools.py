"""troupe.tools: Python functions as tools of Lua agents — the JSON Schema of a function's
arguments from its signature, type hints and docstring (:func:`tool_schema`), and the wrapper
the native worker threads call (arguments JSON in, ``(ok, text)`` out). ``Host.tool``
registers them."""

from __future__ import annotations

import asyncio
import collections.abc
import enum
import inspect
import json
import re
import types
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NONE_TYPE = type(None)


def _schema_for(tp) -> Dict[str, Any]:
    """JSON Schema of a type hint: str, int, float, bool, list[X], dict[str, X], Optional[X],
    Literal[...], Enum subclasses; anything else accepts any value."""
    if tp is inspect.Parameter.empty or tp is Any or tp is object:
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        rest = [a for a in args if a is not _NONE_TYPE]
        nullable = len(rest) != len(args)
        if len(rest) == 1:
            inner = _schema_for(rest[0])
        else:
            inner = {"anyOf": [_schema_for(a) for a in rest]}
        if nullable and isinstance(inner.get("type"), str):
            inner = dict(inner, type=[inner["type"], "null"])
        elif nullable and inner:
            inner = {"anyOf": [inner, {"type": "null"}]}
        return inner
    if origin is typing.Literal:
        return {"enum": list(args)}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    seq = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable)
    if tp in (list, tuple, set, frozenset) or origin in seq:
        schema: Dict[str, Any] = {"type": "array"}
        if args and args[0] is not Ellipsis:
            schema["items"] = _schema_for(args[0])
        return schema
    if tp is dict or origin in (dict, collections.abc.Mapping):
        schema = {"type": "object"}
        if len(args) == 2 and _schema_for(args[1]):
            schema["additionalProperties"] = _schema_for(args[1])
        return schema
    return {}


def _doc_parts(fn) -> tuple:
    """(description, {parameter: description}) from a docstring: the text before an
    "Args:"/"Arguments:"/"Parameters:"/"Returns:" section is the description; "name: text" or
    "name (type): text" lines of the Args section, and ":param name: text" lines, describe
    parameters."""
    doc = inspect.cleandoc(fn.__doc__ or "")
    params: Dict[str, str] = {}
    description: List[str] = []
    section = None
    for line in doc.splitlines():
        stripped = line.strip()
        m = re.match(r"^:param\s+(?:\w+\s+)?(\w+):\s*(.*)$", stripped)
        if m:
            params[m.group(1)] = m.group(2)
            section = "sphinx"
            continue
        if re.match(r"^(Args|Arguments|Parameters|Params)\s*:?$", stripped):
            section = "args"
            continue
        if re.match(r"^(Returns?|Raises|Yields|Examples?|Notes?)\s*:?$", stripped) or stripped.startswith(":"):
            section = "other"
            continue
        if section == "args":
            m = re.match(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
            if m:
                params[m.group(1)] = m.group(2)
            elif stripped and params:
                last = list(params)[-1]
                params[last] = (params[last] + " " + stripped).strip()
        elif section is None:
            description.append(line)
    return "\n".join(description).strip(), params


def tool_schema(fn: Callable) -> Dict[str, Any]:
    """The JSON Schema of ``fn``'s arguments, from its signature and type hints: a parameter
    without a default is required; other names are refused unless ``fn`` takes ``**kwargs``;
    descriptions come from the docstring's Args section."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {}
    _, docs = _doc_parts(fn)
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            continue
        schema = dict(_schema_for(hints.get(p.name, p.annotation)))
        if p.name in docs and docs[p.name]:
            schema["description"] = docs[p.name]
        if p.default is p.empty:
            required.append(p.name)
        elif p.default is not None and isinstance(p.default, (str, int, float, bool)):
            schema["default"] = p.default
        properties[p.name] = schema
    out: Dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        out["additionalProperties"] = False  # the model learns of a misspelt argument
    return out


def _result_text(value) -> str:
    # What the model reads: strings as they are, anything else as JSON (like Lua tools).
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, default=str)


def _tool_caller(fn: Callable) -> Callable[[str], tuple]:
    """fn wrapped for the native worker threads: arguments JSON in, (ok, text) out."""

    def call(arguments_json: str) -> tuple:
        try:
            args = json.loads(arguments_json) if arguments_json else {}
            value = fn(**args) if isinstance(args, dict) else fn(args)
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            return True, _result_text(value)
        except Exception as e:  # becomes the tool's error, which the model reads
            return False, f"{type(e).__name__}: {e}"

    return call


async def _await(awaitable):
    return await awaitable


def tool_spec(fn: Callable, name: Optional[str], description: Optional[str],
              parameters: Optional[Dict[str, Any]]) -> Tuple[str, str, str, Callable[[str], tuple]]:
    """(name, description, parameters as JSON text, caller) of ``fn`` as a tool: each part
    given explicitly or taken from ``fn``. Raises ValueError for a bad name or schema."""
    tool_name = name or getattr(fn, "__name__", "")
    if not _TOOL_NAME.match(tool_name):
        raise ValueError(f"tool name {tool_name!r} must be 1 to 64 ASCII letters, digits, '_' or '-'")
    desc = description if description is not None else _doc_parts(fn)[0]
    params = parameters if parameters is not None else tool_schema(fn)
    if not isinstance(params, dict) or params.get("type") != "object":
        raise ValueError(f"tool {tool_name!r}: parameters must be a JSON Schema with type 'object'")
    return tool_name, desc, json.dumps(params), _tool_caller(fn)
