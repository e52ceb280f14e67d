"""troupe.host: :class:`Host`, one troupe host inside this process — its configuration,
store, plugins, Lua runtime and loop thread; it starts runs, reads the store and registers
Python tools. Hosts still open when the interpreter exits are closed first."""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import time
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import _troupe
from .details import RunDetails, RunList, natural_key
from .errors import ResumeRefused, RunNotFound
from .events import Event, event_from_stored
from .run import Run
from .tools import tool_spec

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


def _input_json(value: Any) -> str:
    return json.dumps({} if value is None else value, ensure_ascii=False)


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
    def run(self, path: "str | os.PathLike", input: Any = None) -> Run:
        """Starts the workflow in the ``.lua`` file ``path`` and returns its :class:`Run` at
        once. ``input`` is any JSON-able value (default ``{}``); the workflow's
        ``run(input)`` receives it. Raises FileNotFoundError when there is no such file (Lua
        source text goes to :meth:`run_source`)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError("path must be a str or os.PathLike (Lua source text: run_source())")
        path = os.fspath(path)
        if not os.path.isfile(path):
            hint = "" if path.endswith(".lua") else " (Lua source text goes to run_source())"
            raise FileNotFoundError(f"{path}: no such workflow file{hint}")
        native = self._native.start(path, "", "", _input_json(input))
        return Run(self, native, path)

    def run_source(self, source: str, input: Any = None, *, name: str = "<string>") -> Run:
        """Starts a workflow given as Lua source text and returns its :class:`Run` at once.
        ``name`` names the text in tracebacks and the store; ``input`` as for :meth:`run`."""
        if not isinstance(source, str):
            raise TypeError("source must be Lua source text (a str)")
        native = self._native.start("", source, name, _input_json(input))
        return Run(self, native, name)

    def resume(self, run_id: str, *, allow_changed: bool = False) -> Run:
        """Takes over a run no process drives any more (``interrupted``, ``waiting``,
        ``queued``: like ``troupe resume``) and returns its :class:`Run` at once. The script
        runs again from the start; every step its journal holds is served instead of being
        done again (no model call is repeated or paid twice). A script changed since the run
        started is refused unless ``allow_changed``; each served step is checked against the
        call the script makes either way. Raises :class:`ResumeRefused` saying why."""
        native = self._native.resume(run_id, allow_changed)
        return Run(self, native, run_id)

    def fork(self, run_id: str, from_step: str, input: Any = None) -> Run:
        """A new run that reuses the journal of ``run_id`` up to the step ``from_step`` (its
        key) — those steps are served, not asked again — and runs live from there, like
        ``troupe fork``; ``input`` replaces the recorded one. Its lineage is recorded
        (``show(...)["parent"]``). Raises :class:`ResumeRefused` (no such run or step)."""
        input_json = "" if input is None else _input_json(input)
        return Run(self, self._native.fork(run_id, from_step, input_json, "", False), run_id)

    def replay(self, run_id: str, script: "str | os.PathLike | None" = None) -> Run:
        """Re-executes a recorded run offline against its journal, with its own script or an
        edited ``script``, like ``troupe replay``: no call is made; the new run fails at the
        first step where the script diverges, naming it, or succeeds (compare the outputs)."""
        path = os.fspath(script) if script is not None else ""
        return Run(self, self._native.fork(run_id, "", "", path, True), run_id)

    def submit(self, path: "str | os.PathLike", input: Any = None) -> str:
        """Queues the workflow in ``path`` for a worker (like ``troupe run --detach``) and
        returns the run's id at once; nothing runs in this host. :meth:`work` (or ``troupe
        worker``) drives it; :meth:`wait` waits for it."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such workflow file")
        return self._native.submit(path, _input_json(input))

    def wait(self, run_id: str, timeout: Optional[float] = None) -> RunDetails:
        """Waits until the run (driven by any process of the store) has ended and returns it
        as :meth:`show` does. Raises TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            details = self.show(run_id)
            if details["status"] in ("succeeded", "failed", "cancelled"):
                return details
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {details['status']} after {timeout} s")
            time.sleep(0.05)

    def work(self, *, once: bool = False, concurrency: int = 16, poll: float = 0.5,
             max_runs: Optional[int] = None) -> int:
        """Drives the store's queued, interrupted and due runs in this host, like ``troupe
        worker``: each is taken with one claim, so several workers never drive a run twice.
        Returns how many runs ended here. ``once``: stop when nothing is left to take and every
        run taken has ended; ``max_runs``: stop after that many ended."""
        active: Dict[str, Run] = {}
        ended = 0
        while True:
            for run_id, run in list(active.items()):
                if run.done():
                    del active[run_id]
                    ended += 1
            if max_runs is not None and ended >= max_runs and not active:
                return ended
            ids = self._native.claimable(concurrency - len(active)) if len(active) < concurrency else []
            for run_id in ids:
                if run_id in active:
                    continue
                try:
                    active[run_id] = Run(self, self._native.resume(run_id, False, True), run_id)
                except ResumeRefused:
                    continue  # another worker took it first
            if once and not ids and not active:
                return ended
            time.sleep(poll if not active else min(poll, 0.05))

    def signal(self, run_id: str, name: str, data: Any = None) -> int:
        """Sends signal ``name`` with ``data`` (any JSON-able value) to a run, like ``troupe
        signal``: buffered until a ``troupe.wait_signal(name)`` of the run takes it, delivered
        once; a parked run is made due. Returns the signal's sequence number."""
        return self._native.signal(run_id, name, _input_json(data))

    def approvals(self, run_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Pending approvals (``troupe.approve``), oldest first: ``run_id``, ``key``,
        ``request`` (title, details, choices, default, timeout, escalate), ``deadline_ms``."""
        return json.loads(self._native.approvals(run_id or ""))

    def approve(self, run_id: str, key: Optional[str] = None, *, choice: str,
                comment: str = "", by: Optional[str] = None) -> Dict[str, Any]:
        """Decides a pending approval (``key``: its step key; default the run's only pending
        one), like ``troupe approve``. The first decision wins: the result is the decision as
        it stands, with ``decided_now`` False when someone (or the deadline) decided first.
        Raises ValueError for a choice the approval does not offer."""
        by = by or os.environ.get("USER") or "someone"
        return json.loads(self._native.approve(run_id, key or "", choice, by, comment))

    def dead_letters(self, limit: int = 100) -> List[Dict[str, Any]]:
        """Dead letters (``troupe dlq list``), newest first: failed runs kept for a person
        (configuration ``dead_letters:``), each ``run_id``, ``workflow``, ``reason``
        (``"retries_exhausted"`` or ``"failed"``), ``step_key`` (the step whose error failed
        the run), ``error``, ``attempts`` (of that step) and ``dead_ms``."""
        return json.loads(self._native.dead_letters(int(limit)))

    def dead_letter(self, run_id: str) -> Optional[Dict[str, Any]]:
        """A run's dead letter, as in :meth:`dead_letters`, with ``failed_attempts`` (each
        failed attempt of its step: ``attempt``, ``status``, ``error``, ``delay_ms``, ...);
        None when the run is not one. Raises :class:`RunNotFound`."""
        text = self._native.dead_letter(run_id)
        if text is None:
            raise RunNotFound(f"no run with id '{run_id}'")
        return json.loads(text)

    def replay_dead_letter(self, run_id: str, *, allow_changed: bool = False) -> Run:
        """Re-drives a failed run from its journal (``troupe dlq replay``): its finished steps
        are served, its failed ones tried again with their retry policies anew. Returns its
        :class:`Run` at once; raises :class:`ResumeRefused` (no such run, not failed, ...)."""
        native = self._native.resume(run_id, allow_changed, False, True)
        return Run(self, native, run_id)

    def discard_dead_letter(self, run_id: str) -> bool:
        """Drops a run's dead letter (``troupe dlq discard``); the run and its journal stay.
        False when it was not one. Raises :class:`RunNotFound`."""
        dropped = self._native.discard_dead_letter(run_id)
        if dropped < 0:
            raise RunNotFound(f"no run with id '{run_id}'")
        return dropped == 1

    def runs(self, limit: int = 50, status: Optional[str] = None, workflow: Optional[str] = None) -> RunList:
        """Recent runs from the store, newest first (like ``troupe runs``); ``status`` (a
        :class:`RunStatus` or its string) and ``workflow`` (a name) filter them."""
        return RunList(json.loads(self._native.runs(limit, status or "", workflow or "")))

    def show(self, run_id: str) -> RunDetails:
        """A run (full id or a unique prefix) with its steps in execution order (like ``troupe
        show``). Raises :class:`RunNotFound`."""
        text = self._native.show(run_id)
        if text is None:
            raise RunNotFound(f"no run with id '{run_id}'")
        details = RunDetails(json.loads(text))
        details["steps"].sort(key=lambda s: natural_key(s["step_key"]))
        return details

    def events(self, run_id: str) -> List[Event]:
        """The run's stored events (text deltas are not stored), in order."""
        run = self.show(run_id)
        return [event_from_stored(e) for e in json.loads(self._native.events(run["id"], 0, 1000000))]

    # --- retention
    def gc(self, older_than: Optional[str] = "30d",
           status: "str | Iterable[str] | None" = None,
           dry_run: bool = False) -> Dict[str, Any]:
        """Deletes the ended runs (succeeded, failed or cancelled, never running ones) that
        finished longer ago than ``older_than`` — ``"30d"``, ``"12h"``, ``"90m"``, ``"45s"`` —
        with their steps and events, like ``troupe gc``. ``older_than=None`` takes the
        configuration's ``retention.older_than`` (``ValueError`` when it sets none).
        ``status``: one status or several (a :class:`RunStatus` or its string) to delete only
        those; None: the configuration's ``retention.status``, else all three. ``dry_run``:
        count, delete nothing.

        Safe while this host or other processes run workflows on the same store: it deletes in
        short transactions and pauses between them. Returns ``{"runs", "steps", "events",
        "dry_run", "cutoff_ms"}`` (what was, or would be, deleted; runs that finished before
        ``cutoff_ms``, unix milliseconds). Raises ``ValueError`` for a bad age or status and
        :class:`StoreError` when the store fails (what was deleted before stays deleted)."""
        if older_than is not None and not isinstance(older_than, str):
            raise TypeError("older_than must be a duration such as '30d', '12h', '90m' or '45s'")
        if status is None:
            statuses: List[str] = []
        elif isinstance(status, str):
            statuses = [str(status)]
        else:
            statuses = [str(s) for s in status]
        return dict(self._native.gc(older_than, statuses, bool(dry_run)))

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
            tool_name, desc, params_json, caller = tool_spec(f, name, description, parameters)
            self._native.register_tool(tool_name, desc, params_json, caller)
            self._tools[tool_name] = f
            return f

        if fn is None:
            return register
        return register(fn)

    @property
    def tools(self) -> Dict[str, Callable]:
        """The Python tools registered on this host, by name."""
        return dict(self._tools)
