"""troupe.run: :class:`Run`, one run started by ``Host.run`` or ``Host.run_source`` — its
events as they happen, its end and output, cancelling it, and the same under asyncio (the
run's eventfd watched by the asyncio loop, so nothing polls)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Union

from .codes import RunStatus, named
from .details import RunDetails
from .errors import RunCancelled, WorkflowError
from .events import Event, event_from_native

if TYPE_CHECKING:
    from .host import Host


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
    """A run started by :meth:`Host.run` or :meth:`Host.run_source`.

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

    def done(self) -> bool:
        """True once the run ended (its events may still be waiting to be read)."""
        return self._native.finished

    @property
    def status(self) -> Union[RunStatus, str]:
        """:class:`RunStatus`: ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``CANCELLED`` (equal
        to ``"running"``, ``"succeeded"``, ...)."""
        outcome = self._native.outcome()
        return RunStatus.RUNNING if outcome is None else named(RunStatus, outcome["status"])

    # --- events
    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        t = self._native.next_event(None)
        if t is None:
            raise StopIteration
        return event_from_native(t)

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Like iterating the run, but raises TimeoutError when no event comes for ``timeout``
        seconds."""
        while True:
            t = self._native.next_event(timeout)
            if t is None:
                return
            yield event_from_native(t)

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
        if o["status"] == RunStatus.SUCCEEDED:
            return json.loads(o["output_json"]) if o["output_json"] else None
        cls = RunCancelled if o["status"] == RunStatus.CANCELLED else WorkflowError
        raise cls(o["run_id"] or self.id, o["workflow"], o["status"], o["error"])

    def cancel(self, reason: str = "cancelled from Python") -> bool:
        """Cancels the run (pending model calls too); it is recorded as cancelled with
        ``reason``, and ``result()`` then raises :class:`RunCancelled`.

        Returns True when the run ended cancelled, False when it had already ended (or ended
        on its own before the cancellation reached it). Waits for that answer, with the GIL
        released: the run stops at its next count hook or turn of the host's loop."""
        return self._native.cancel(reason)

    def show(self) -> RunDetails:
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
                yield event_from_native(t)
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
