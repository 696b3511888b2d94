"""A throttled pump: call ``tick()`` a few times a second on a daemon thread.

The panels use it to drain a worker's event queue at about 2 Hz, so a training run that
reports hundreds of steps a second costs the browser two widget updates a second, and the
cell that started the run returns at once. (ipykernel sends widget updates made from a
background thread; 7.0 broke that, hence ``ipykernel!=7.0.*`` in the dependencies.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Pump:
    """Run ``tick`` every ``interval`` seconds until it returns ``False`` or :meth:`stop`.

    An exception from ``tick`` stops the pump and is handed to ``on_error`` (never raised
    into the kernel's output from a thread nobody is watching).

    Example:
        >>> ticks = []
        >>> pump = Pump(lambda: ticks.append(1) or len(ticks) < 3, interval=0.01)
        >>> pump.start().join(1.0)
        True
        >>> len(ticks)
        3
    """

    def __init__(
        self,
        tick: Callable[[], bool],
        *,
        interval: float = 0.5,
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "annowidget-pump",
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self._tick = tick
        self.interval = float(interval)
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Pump:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the pump to end after its current tick (does not wait)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the pump to end; ``True`` when it has."""
        if self._thread.ident is None:
            return True
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                again = self._tick()
            except BaseException as exc:  # reported, not raised: this thread has no caller
                if self._on_error is not None:
                    self._on_error(exc)
                return
            if not again:
                return
            self._stop.wait(self.interval)
