"""troupe.codes: the names of the codes the API hands out — run statuses and event types.

Each class is a string enum: a member *is* the plain string the store, the CLI and earlier
versions of this package use (``RunStatus.SUCCEEDED == "succeeded"``, ``str()`` and f-strings
give ``"succeeded"``, ``json.dumps`` writes it), so code comparing with strings keeps working.
Run and step records from the store (:class:`~troupe.RunList`, :class:`~troupe.RunDetails`)
keep plain strings; they compare equal to these members.
"""

from __future__ import annotations

import enum
import sys
from typing import Type, TypeVar, Union

if sys.version_info >= (3, 11):
    StrEnum = enum.StrEnum
else:  # pragma: no cover - Debian 12 has 3.11

    class StrEnum(str, enum.Enum):
        """enum.StrEnum before Python 3.11: members are their values, and print as them."""

        def __str__(self) -> str:
            return str.__str__(self)


class RunStatus(StrEnum):
    """The status of a run (``Run.status``, ``WorkflowError.status``, the ``status`` filter of
    ``Host.runs``). Steps in the store use the same names but ``running``: a step is recorded
    when it ends (a durable wait that has started is ``pending``). ``INTERRUPTED`` is read, not
    stored: a run recorded as running whose process stopped renewing its lease (it crashed);
    ``Host.resume`` takes it over. ``QUEUED`` waits for a worker; ``WAITING`` is parked on a
    durable timer, approval or signal."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    INTERRUPTED = "interrupted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    """The type of an :class:`~troupe.Event`."""

    RUN_STARTED = "run.started"
    RUN_RESUMED = "run.resumed"
    STEP_STARTED = "step.started"
    STEP_FINISHED = "step.finished"
    JOIN_STARTED = "join.started"
    JOIN_FINISHED = "join.finished"
    TEXT_DELTA = "text.delta"
    LOG = "log"
    RUN_FINISHED = "run.finished"


E = TypeVar("E", bound=StrEnum)


def named(codes: Type[E], text: str) -> Union[E, str]:
    """The member of ``codes`` whose value is ``text``; ``text`` itself when there is none (a
    newer host may add codes: they come through as plain strings)."""
    try:
        return codes(text)
    except ValueError:
        return text
