"""troupe.details: runs and steps read from the store — :class:`RunList` (``Host.runs``) and
:class:`RunDetails` (``Host.show``), plain lists and dicts of the store's fields that also
become pandas DataFrames."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Dict, List


def natural_key(step_key: str):
    """Sort key of a step key: "2" < "3.1/1" < "3.2/1" < "10" (numbers compare as numbers)."""
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
    # The host prices every model call from the pricing table (docs/governance.md): cost_usd is
    # None for other steps and for a call whose model has no price (then unpriced is True).
    return {
        "step_key": s["step_key"],
        "kind": s["kind"],
        "agent": s["agent"] or None,
        "model": s["model"] or None,
        "status": s["status"],
        "latency_ms": s["latency_ms"],
        "input_tokens": s["input_tokens"],
        "output_tokens": s["output_tokens"],
        "cached_input_tokens": s.get("cached_input_tokens", 0),
        "reasoning_tokens": s.get("reasoning_tokens", 0),
        "cache_write_tokens": s.get("cache_write_tokens", 0),
        "cost_usd": s.get("cost_usd"),
        "unpriced": bool(s.get("unpriced", False)),
        "started": _ms_to_datetime(s["started_ms"]),
        "finished": _ms_to_datetime(s["finished_ms"]),
        "error": s["error"],
    }


class RunList(list):
    """Runs as a list of dicts (``id``, ``workflow``, ``status``, ``created_ms``,
    ``finished_ms``, ``duration_ms``, ``input``, ``output``, ``error``, ``cost_usd``: the sum of
    its priced model calls, ``unpriced_steps``: its calls without a price), newest first."""

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
                "cost_usd": r.get("cost_usd", 0.0),
                "unpriced_steps": r.get("unpriced_steps", 0),
                "error": r["error"],
            }
            for r in self
        ]
        columns = ["id", "workflow", "status", "created", "finished", "duration_ms", "cost_usd",
                   "unpriced_steps", "error"]
        return pd.DataFrame(rows, columns=columns)


class RunDetails(dict):
    """A run's record (as in :class:`RunList`) plus ``steps``: a list of dicts (``step_key``,
    ``kind``, ``agent``, ``model``, ``status``, ``error``, ``input_tokens``,
    ``output_tokens``, ``cached_input_tokens``, ``reasoning_tokens``, ``cache_write_tokens``,
    ``cost_usd`` (None unless a priced model call), ``unpriced``, ``latency_ms``,
    ``started_ms``, ``finished_ms``, ``request``, ``response``) in execution order."""

    @property
    def steps(self) -> List[Dict[str, Any]]:
        return self["steps"]

    def to_pandas(self):
        """The steps as a DataFrame: step_key, kind, agent, model, status, latency_ms,
        input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cache_write_tokens,
        cost_usd (from the pricing table; None when not a priced model call), unpriced, started,
        finished, error."""
        pd = _require_pandas()
        columns = ["step_key", "kind", "agent", "model", "status", "latency_ms", "input_tokens",
                   "output_tokens", "cached_input_tokens", "reasoning_tokens",
                   "cache_write_tokens", "cost_usd", "unpriced", "started", "finished", "error"]
        return pd.DataFrame([_step_row(s) for s in self["steps"]], columns=columns)
