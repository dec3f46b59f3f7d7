"""The timer that ends a request whose body stops arriving (``408 request_timeout``).

One timer per body, not one per read: each part of the body that arrives only notes the time, and
the timer, when it comes due, looks whether a part came since and waits again from there. A request
whose client sends its headers, with a Content-Length, and then nothing is timed from the first read
on, as a client that stops in the middle is, for the price of one timer handle: ``asyncio.wait_for``
around each read made a task per read, more than the rest of a small PUT costs.
"""

from __future__ import annotations

import asyncio


class BodyTimer:
    """Cancel the current task once ``timeout`` seconds pass without :meth:`arrived` being called;
    :attr:`fired` then tells that cancellation from any other (the server's shutdown)."""

    __slots__ = ("_handle", "_last", "_loop", "_task", "_timeout", "fired")

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._timeout = timeout
        self._last = self._loop.time()
        self._handle = self._loop.call_at(self._last + timeout, self._due)
        self.fired = False

    def arrived(self) -> None:
        """A part of the body arrived: the timeout counts from now."""
        self._last = self._loop.time()

    def stop(self) -> None:
        """The body is read (or its reading ended otherwise): the timer will not fire."""
        self._handle.cancel()

    def _due(self) -> None:
        due = self._last + self._timeout
        if self._loop.time() < due:  # a part arrived since the timer was set: wait from that one
            self._handle = self._loop.call_at(due, self._due)
            return
        if self._task is not None:
            self.fired = True
            self._task.cancel()
