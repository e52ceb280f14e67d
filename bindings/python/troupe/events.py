"""troupe.events: the :class:`Event` of a run, made from the native module's tuples (live
events) or from the store's records (``Host.events``)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Union

from .codes import EventType, named


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of a run.

    ``type`` is an :class:`EventType` (``run.started``, ``step.started``, ``step.finished``,
    ``join.started``, ``join.finished``, ``text.delta``, ``log`` or ``run.finished``; equal to
    those strings); ``step_key`` is the step's key (``""`` for run-level events); ``data`` the
    event's fields (``kind``, ``agent``, ``model``, ``status``, token counts, ``text``,
    ``message``, ...); ``ts_ms`` Unix milliseconds.
    """

    type: Union[EventType, str]
    run_id: str
    step_key: str
    data: Dict[str, Any]
    ts_ms: int = 0

    def __repr__(self) -> str:
        key = f" {self.step_key}" if self.step_key else ""
        return f"Event({self.type}{key} {json.dumps(self.data, ensure_ascii=False)[:120]})"


def event_from_native(t: tuple) -> Event:
    """A live event: the native module's (type, run_id, step_key, data_json, ts_ms)."""
    etype, run_id, step_key, data_json, ts_ms = t
    try:
        data = json.loads(data_json) if data_json else {}
    except ValueError:
        data = {"raw": data_json}
    return Event(named(EventType, etype), run_id, step_key, data, ts_ms)


def event_from_stored(e: Dict[str, Any]) -> Event:
    """A stored event: one dict of the native module's ``events()`` JSON."""
    data = e["data"] if isinstance(e["data"], dict) else {}
    return Event(named(EventType, e["type"]), e["run_id"], e["step_key"], data, e["ts_ms"])
