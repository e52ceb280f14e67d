"""troupe: drive the troupe multi-agent host from Python and notebooks.

The same host as the ``troupe`` command — plugins, SQLite store, Lua runtime — runs inside the
Python process, on a thread of its own (one per :class:`Host`)::

    import troupe

    host = troupe.Host()                                   # like `troupe run`: troupe.yaml, ...
    run = host.run("scripts/workflows/pr_review.lua", input={"diff": "..."})
    for ev in run:                                         # events as they happen
        print(ev.type, ev.step_key, ev.data)
    print(run.result())                                    # the output, or WorkflowError
    host.show(run.id).to_pandas()                          # its steps as a DataFrame

Waiting (iterating a run, ``result()``) releases the GIL and never busy-polls; Ctrl-C (or
Jupyter's interrupt) while waiting cancels the run and raises KeyboardInterrupt. ``await run``
and ``async for ev in run`` work under asyncio. Python functions become tools for Lua agents
with :meth:`Host.tool`.
"""

from __future__ import annotations

import asyncio
import atexit
import collections.abc
import dataclasses
import datetime as _dt
import enum
import inspect
import json
import os
import re
import tempfile
import types
import typing
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional

from . import _troupe

__all__ = [
    "Host",
    "Run",
    "Event",
    "RunList",
    "RunDetails",
    "TroupeError",
    "ConfigError",
    "StoreError",
    "WorkflowError",
    "RunCancelled",
    "RunNotFound",
    "tool_schema",
]

__version__ = _troupe.version

#: Base class of every error troupe raises (except TimeoutError and KeyboardInterrupt).
TroupeError = _troupe.TroupeError
#: A configuration file (or dict) that cannot be used; the message names the field.
ConfigError = _troupe.ConfigError
#: The store cannot be opened or read.
StoreError = _troupe.StoreError


class WorkflowError(TroupeError):
    """A run that did not succeed.

    Attributes: ``run_id``, ``workflow``, ``status`` (``"failed"`` or ``"cancelled"``),
    ``message`` (the error's first part) and ``traceback`` (the Lua traceback, ``""`` when
    there is none).
    """

    def __init__(self, run_id: str, workflow: str, status: str, error: str):
        message, _, trace = error.partition("\nstack traceback:")
        self.run_id = run_id
        self.workflow = workflow
        self.status = status
        self.message = message
        self.traceback = ("stack traceback:" + trace) if trace else ""
        super().__init__(f"run {run_id} ({workflow}) {status}: {message}")

    def __str__(self) -> str:
        text = super().__str__()
        return text + ("\n" + self.traceback if self.traceback else "")


class RunCancelled(WorkflowError):
    """A run that was cancelled (``run.cancel()``, Ctrl-C, the host closing)."""


class RunNotFound(TroupeError, KeyError):
    """No run has this id (or id prefix) in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such run"


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of a run.

    ``type`` is ``run.started``, ``step.started``, ``step.finished``, ``join.started``,
    ``text.delta``, ``log`` or ``run.finished``; ``step_key`` is the step's key (``""`` for
    run-level events); ``data`` the event's fields (``kind``, ``agent``, ``model``,
    ``status``, token counts, ``text``, ``message``, ...); ``ts_ms`` Unix milliseconds.
    """

    type: str
    run_id: str
    step_key: str
    data: Dict[str, Any]
    ts_ms: int = 0

    def __repr__(self) -> str:
        key = f" {self.step_key}" if self.step_key else ""
        return f"Event({self.type}{key} {json.dumps(self.data, ensure_ascii=False)[:120]})"


def _event(t: tuple) -> Event:
    etype, run_id, step_key, data_json, ts_ms = t
    try:
        data = json.loads(data_json) if data_json else {}
    except ValueError:
        data = {"raw": data_json}
    return Event(etype, run_id, step_key, data, ts_ms)


class _Waker:
    """Wakes asyncio waiters of one run: the run's eventfd is watched with loop.add_reader
    while someone waits, so nothing polls."""

    def __init__(self, native, loop: asyncio.AbstractEventLoop):
        self._native = native
        self._loop = loop
        self._fd = native.notify_fd()
        self._futures: List[asyncio.Future] = []
        self._reading = False

    def wait(self) -> asyncio.Future:
        fut = self._loop.create_future()
        self._futures.append(fut)
        if not self._reading:
            self._loop.add_reader(self._fd, self._ready)
            self._reading = True
        return fut

    def _ready(self) -> None:
        self._native.drain_notify()
        futures, self._futures = self._futures, []
        for fut in futures:
            if not fut.done():
                fut.set_result(None)
        self._loop.remove_reader(self._fd)
        self._reading = False


class Run:
    """A run started by :meth:`Host.run`.

    Iterating it (``for ev in run``) yields its :class:`Event` objects as they happen and ends
    when the run ends; each event is handed out once, to whichever iterator takes it first.
    ``result()`` waits for the end and returns the output. Under asyncio, ``await run`` and
    ``async for ev in run``.
    """

    def __init__(self, host: "Host", native, source: str):
        self._host = host
        self._native = native
        self._source = source
        self._waker: Optional[_Waker] = None

    def __repr__(self) -> str:
        return f"<troupe.Run {self.id} {self.status} {self._source}>"

    @property
    def id(self) -> str:
        return self._native.id

    @property
    def host(self) -> "Host":
        return self._host

    @property
    def done(self) -> bool:
        """True once the run ended (its events may still be waiting to be read)."""
        return self._native.finished

    @property
    def status(self) -> str:
        """``running``, ``succeeded``, ``failed`` or ``cancelled``."""
        outcome = self._native.outcome()
        return "running" if outcome is None else outcome["status"]

    # --- events
    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        t = self._native.next_event(None)
        if t is None:
            raise StopIteration
        return _event(t)

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Like iterating the run, but raises TimeoutError when no event comes for ``timeout``
        seconds."""
        while True:
            t = self._native.next_event(timeout)
            if t is None:
                return
            yield _event(t)

    # --- the end
    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits for the end; False when ``timeout`` seconds passed first."""
        return self._native.wait(timeout)

    def result(self, timeout: Optional[float] = None) -> Any:
        """Waits for the end and returns the output as Python data (a Lua table becomes a dict
        or list, a string stays a string). Raises :class:`WorkflowError` (or
        :class:`RunCancelled`) when the run did not succeed, TimeoutError when ``timeout``
        seconds pass first. Ctrl-C while waiting cancels the run."""
        if not self._native.wait(timeout):
            raise TimeoutError(f"run {self.id} is still running after {timeout} s")
        o = self._native.outcome()
        if o["status"] == "succeeded":
            return json.loads(o["output_json"]) if o["output_json"] else None
        cls = RunCancelled if o["status"] == "cancelled" else WorkflowError
        raise cls(o["run_id"] or self.id, o["workflow"], o["status"], o["error"])

    def cancel(self, reason: str = "cancelled from Python") -> None:
        """Cancels the run (pending model calls too); it is recorded as cancelled. Returns at
        once; ``result()`` then raises :class:`RunCancelled`."""
        self._native.cancel(reason)

    def show(self) -> "RunDetails":
        """The run's record and steps from the store (see :meth:`Host.show`)."""
        return self._host.show(self.id)

    # --- asyncio
    def _wait_change(self) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if self._waker is None or self._waker._loop is not loop:
            self._waker = _Waker(self._native, loop)
        return self._waker.wait()

    def __aiter__(self):
        return self._aevents()

    async def _aevents(self):
        while True:
            code, t = self._native.poll()
            if code == 0:
                yield _event(t)
            elif code == 2:
                return
            else:
                await self._wait_change()

    def __await__(self):
        return self._aresult().__await__()

    async def _aresult(self) -> Any:
        try:
            while not self._native.finished:
                await self._wait_change()
        except asyncio.CancelledError:
            self.cancel("the awaiting asyncio task was cancelled")
            raise
        return self.result(0)


def _natural_key(step_key: str):
    # "2" < "3.1/1" < "3.2/1" < "10": numbers compare as numbers
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", step_key) if p]


def _ms_to_datetime(ms):
    if not ms:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000.0, tz=_dt.timezone.utc)


def _require_pandas():
    try:
        import pandas  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ImportError("to_pandas() needs pandas (Debian: apt-get install python3-pandas)") from e
    return pandas


def _step_row(s: Dict[str, Any]) -> Dict[str, Any]:
    response = s.get("response") if isinstance(s.get("response"), dict) else {}
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    cost = usage.get("cost_usd", usage.get("cost"))
    return {
        "step_key": s["step_key"],
        "kind": s["kind"],
        "agent": s["agent"] or None,
        "model": s["model"] or None,
        "status": s["status"],
        "latency_ms": s["latency_ms"],
        "input_tokens": s["input_tokens"],
        "output_tokens": s["output_tokens"],
        "cost_usd": cost,
        "started": _ms_to_datetime(s["started_ms"]),
        "finished": _ms_to_datetime(s["finished_ms"]),
        "error": s["error"],
    }


class RunList(list):
    """Runs as a list of dicts (``id``, ``workflow``, ``status``, ``created_ms``,
    ``finished_ms``, ``duration_ms``, ``input``, ``output``, ``error``), newest first."""

    def to_pandas(self):
        """A DataFrame with one row per run (times as datetimes, in UTC)."""
        pd = _require_pandas()
        rows = [
            {
                "id": r["id"],
                "workflow": r["workflow"],
                "status": r["status"],
                "created": _ms_to_datetime(r["created_ms"]),
                "finished": _ms_to_datetime(r["finished_ms"]),
                "duration_ms": r["duration_ms"],
                "error": r["error"],
            }
            for r in self
        ]
        columns = ["id", "workflow", "status", "created", "finished", "duration_ms", "error"]
        return pd.DataFrame(rows, columns=columns)


class RunDetails(dict):
    """A run's record (as in :class:`RunList`) plus ``steps``: a list of dicts (``step_key``,
    ``kind``, ``agent``, ``model``, ``status``, ``error``, ``input_tokens``,
    ``output_tokens``, ``latency_ms``, ``started_ms``, ``finished_ms``, ``request``,
    ``response``) in execution order."""

    @property
    def steps(self) -> List[Dict[str, Any]]:
        return self["steps"]

    def to_pandas(self):
        """The steps as a DataFrame: step_key, kind, agent, model, status, latency_ms,
        input_tokens, output_tokens, cost_usd (when the provider reports a cost), started,
        finished, error."""
        pd = _require_pandas()
        columns = ["step_key", "kind", "agent", "model", "status", "latency_ms", "input_tokens",
                   "output_tokens", "cost_usd", "started", "finished", "error"]
        return pd.DataFrame([_step_row(s) for s in self["steps"]], columns=columns)


# --- Python functions as tools ------------------------------------------------------------

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


# --- the host --------------------------------------------------------------------------------

_live_hosts: "weakref.WeakSet[Host]" = weakref.WeakSet()


@atexit.register
def _close_hosts_at_exit() -> None:
    # Before the interpreter finalises: the host's threads must not outlive it.
    for host in list(_live_hosts):
        try:
            host.close()
        except Exception:
            pass


def _module_plugin_dirs() -> List[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    # installed: troupe/plugins; build tree: <build>/python/troupe -> <build>/plugins
    return [os.path.join(here, "plugins"), os.path.normpath(os.path.join(here, "..", "..", "plugins"))]


def _absolute_paths(doc: Dict[str, Any]) -> Dict[str, Any]:
    # Paths in a config dict are relative to the current directory (a file's are relative to
    # the file, and the dict is written to a temporary file).
    doc = json.loads(json.dumps(doc))
    if isinstance(doc.get("store"), str):
        doc["store"] = os.path.abspath(doc["store"])
    if isinstance(doc.get("plugin_path"), list):
        doc["plugin_path"] = [os.path.abspath(p) if isinstance(p, str) else p for p in doc["plugin_path"]]
    elif isinstance(doc.get("plugin_path"), str):
        doc["plugin_path"] = os.path.abspath(doc["plugin_path"])
    for p in (doc.get("providers") or {}).values():
        if isinstance(p, dict) and isinstance(p.get("plugin"), str) and "/" in p["plugin"]:
            p["plugin"] = os.path.abspath(p["plugin"])
    return doc


class Host:
    """One troupe host inside this process: configuration, store, plugins, Lua runtime, and a
    thread running its event loop. Several hosts may live side by side.

    ``config``: None (search like the CLI: ``$TROUPE_CONFIG``, ``./troupe.yaml``,
    ``./troupe.yml``, ``./troupe.json``, else defaults — every provider on the offline mock
    unless a vendor's key is in the environment), a path to a YAML/JSON file, or a dict with
    the file's fields (its relative paths are relative to the current directory).
    ``store``: the SQLite file, overriding the configuration's.

    Plugins are found on the configuration's ``plugin_path``, then ``$TROUPE_PLUGIN_PATH``,
    then next to this package (``troupe/plugins`` when installed, ``<build>/plugins`` in the
    build tree). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, config: "str | os.PathLike | Dict[str, Any] | None" = None,
                 store: "str | os.PathLike | None" = None):
        self._tmp = None
        path = None
        if isinstance(config, dict):
            self._tmp = tempfile.TemporaryDirectory(prefix="troupe-config-")
            path = os.path.join(self._tmp.name, "troupe.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(_absolute_paths(config), f)
        elif config is not None:
            path = os.fspath(config)
        try:
            self._native = _troupe.NativeHost(
                path, os.fspath(store) if store is not None else None, _module_plugin_dirs())
        finally:
            if self._tmp is not None:  # read at construction; not needed any more
                self._tmp.cleanup()
                self._tmp = None
        self._tools: Dict[str, Callable] = {}
        _live_hosts.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._native.closed else self._native.store_path
        return f"<troupe.Host {state}>"

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Cancels the host's running runs (recorded as cancelled), waits for running Python
        tools, stops its thread and closes the store. Idempotent."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    @property
    def store_path(self) -> str:
        return self._native.store_path

    @property
    def config_path(self) -> str:
        """The configuration file in use ("" for the defaults)."""
        return self._native.config_path

    # --- plugins
    def plugins(self) -> List[Dict[str, Any]]:
        """Every plugin on the search path: ``name``, ``kind``, ``version``, ``abi``,
        ``description``, ``path``; a plugin that failed to load has ``error`` set instead."""
        return json.loads(self._native.plugins())

    def plugin_search_path(self) -> List[str]:
        return list(self._native.plugin_search_path())

    # --- runs
    def run(self, workflow: "str | os.PathLike", input: Any = None, *, name: Optional[str] = None) -> Run:
        """Starts a workflow and returns its :class:`Run` at once.

        ``workflow`` is a path to a ``.lua`` file, or Lua source text (anything that is not an
        existing file and contains a newline or ``return``); ``name`` names a source text in
        tracebacks and the store (default ``"<string>"``). ``input`` is any JSON-able value
        (default ``{}``); the workflow's ``run(input)`` receives it.
        """
        input_json = json.dumps({} if input is None else input, ensure_ascii=False)
        if isinstance(workflow, os.PathLike) or (isinstance(workflow, str) and os.path.isfile(workflow)):
            path = os.fspath(workflow)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: no such workflow file")
            native = self._native.start(path, "", "", input_json)
            return Run(self, native, path)
        if not isinstance(workflow, str):
            raise TypeError("workflow must be a path or Lua source text")
        if "\n" not in workflow and "return" not in workflow:
            raise FileNotFoundError(f"{workflow}: no such workflow file")
        chunk = name or "<string>"
        native = self._native.start("", workflow, chunk, input_json)
        return Run(self, native, chunk)

    def runs(self, limit: int = 50, status: Optional[str] = None, workflow: Optional[str] = None) -> RunList:
        """Recent runs from the store, newest first (like ``troupe runs``)."""
        return RunList(json.loads(self._native.runs(limit, status or "", workflow or "")))

    def show(self, run_id: str) -> RunDetails:
        """A run (full id or a unique prefix) with its steps in execution order (like ``troupe
        show``). Raises :class:`RunNotFound`."""
        text = self._native.show(run_id)
        if text is None:
            raise RunNotFound(f"no run with id '{run_id}'")
        details = RunDetails(json.loads(text))
        details["steps"].sort(key=lambda s: _natural_key(s["step_key"]))
        return details

    def events(self, run_id: str) -> List[Event]:
        """The run's stored events (text deltas are not stored), in order."""
        run = self.show(run_id)
        return [Event(e["type"], e["run_id"], e["step_key"], e["data"] if isinstance(e["data"], dict) else {},
                      e["ts_ms"]) for e in json.loads(self._native.events(run["id"], 0, 1000000))]

    # --- Python tools
    def tool(self, fn: Optional[Callable] = None, *, name: Optional[str] = None,
             description: Optional[str] = None, parameters: Optional[Dict[str, Any]] = None):
        """Makes a Python function a tool that Lua agents can use: in a workflow,
        ``troupe.host_tool("name")`` or the name in an agent's ``tools`` list.

        Used bare (``@host.tool``) the name is the function's, the description its docstring
        and the JSON Schema of the arguments comes from the signature's type hints (str, int,
        float, bool, list, dict, Optional, Literal; a parameter with a default is not
        required). ``@host.tool(name=..., description=..., parameters=...)`` sets any of them.
        The function is called with the arguments as keyword arguments, on a worker thread
        with the GIL held; a string result goes to the model as it is, anything else as JSON;
        an exception becomes the tool's error, which the model reads. Returns the function.
        """

        def register(f: Callable) -> Callable:
            tool_name = name or getattr(f, "__name__", "")
            if not _TOOL_NAME.match(tool_name):
                raise ValueError(f"tool name {tool_name!r} must be 1 to 64 ASCII letters, digits, '_' or '-'")
            desc = description if description is not None else _doc_parts(f)[0]
            params = parameters if parameters is not None else tool_schema(f)
            if not isinstance(params, dict) or params.get("type") != "object":
                raise ValueError(f"tool {tool_name!r}: parameters must be a JSON Schema with type 'object'")
            self._native.register_tool(tool_name, desc, json.dumps(params), _tool_caller(f))
            self._tools[tool_name] = f
            return f

        if fn is None:
            return register
        return register(fn)

    @property
    def tools(self) -> Dict[str, Callable]:
        """The Python tools registered on this host, by name."""
        return dict(self._tools)
