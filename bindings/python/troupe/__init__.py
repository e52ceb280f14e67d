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

``host.run_source(text)`` runs Lua source text instead of a file. Waiting (iterating a run,
``result()``) releases the GIL and never busy-polls; Ctrl-C (or Jupyter's interrupt) while
waiting cancels the run and raises KeyboardInterrupt. ``await run`` and ``async for ev in run``
work under asyncio. Python functions become tools for Lua agents with :meth:`Host.tool`.

The package, one job per module: ``host`` (Host), ``run`` (Run, asyncio), ``events`` (Event),
``details`` (RunList, RunDetails), ``tools`` (functions as tools), ``errors``, ``codes``
(RunStatus, EventType), ``graph`` (a picture of a run); ``_troupe`` is the native module.
"""

from __future__ import annotations

from . import _troupe
from .codes import EventType, RunStatus
from .details import RunDetails, RunList
from .errors import (
    ConfigError,
    RunCancelled,
    RunNotFound,
    StoreError,
    ResumeRefused,
    TroupeError,
    WorkflowError,
)
from .events import Event
from .host import Host
from .run import Run
from .tools import tool_schema

__all__ = [
    "Host",
    "Run",
    "Event",
    "RunList",
    "RunDetails",
    "TroupeError",
    "ConfigError",
    "StoreError",
    "ResumeRefused",
    "WorkflowError",
    "RunCancelled",
    "RunNotFound",
    "tool_schema",
    "RunStatus",
    "EventType",
]

__version__ = _troupe.version
