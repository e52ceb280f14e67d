"""troupe.errors: the exceptions troupe raises.

The first four come from the native module (it raises them); the others are raised by the
package when a run did not succeed or a run id is unknown. All are :class:`TroupeError`.
"""

from __future__ import annotations

from . import _troupe
from .codes import RunStatus, named

#: Base class of every error troupe raises (except TimeoutError and KeyboardInterrupt).
TroupeError = _troupe.TroupeError
#: A configuration file (or dict) that cannot be used; the message names the field.
ConfigError = _troupe.ConfigError
#: The store cannot be opened or read.
StoreError = _troupe.StoreError
#: A run that cannot be resumed (Host.resume): no such run, it runs in another process, it
#: ended, or its script changed (resume with allow_changed=True).
ResumeRefused = _troupe.ResumeRefused


class WorkflowError(TroupeError):
    """A run that did not succeed.

    Attributes: ``run_id``, ``workflow``, ``status`` (:class:`RunStatus` ``FAILED`` or
    ``CANCELLED``, equal to ``"failed"`` and ``"cancelled"``), ``message`` (the error's first
    part) and ``traceback`` (the Lua traceback, ``""`` when there is none).
    """

    def __init__(self, run_id: str, workflow: str, status: str, error: str):
        message, _, trace = error.partition("\nstack traceback:")
        self.run_id = run_id
        self.workflow = workflow
        self.status = named(RunStatus, status)
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
