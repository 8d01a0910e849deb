"""A Keras-2-style progress bar for training loops.

    Epoch 1/10
    1/3 [=========>....................] - ETA: 0s - loss: 0.6931      (while running, on a TTY)
    3/3 [==============================] - 0s 5ms/step - loss: 0.6931 - accuracy: 0.5000

On a terminal the bar is redrawn in place with ``\\r``; written to a file, a pipe or a notebook
cell capture it prints only the final line of each epoch, so logs stay readable.
``verbose=2`` prints one short line per epoch: ``3/3 - 0s - 5ms/step - loss: 0.6931``.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Callable, Iterable, Mapping, Optional, Tuple, Union

Values = Union[Mapping[str, float], Iterable[Tuple[str, float]]]


def format_value(value: float) -> str:
    """A logged number as Keras shows it: 4 decimals, or scientific notation when |v| ≤ 1e-3
    (so a loss of 0.0002 does not print as 0.0000)."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_time_per_unit(seconds: float, unit: str = "step") -> str:
    """Seconds per step in Keras' units: ``2s/step`` (≥ 1 s, or exactly 0), ``5ms/step``
    (≥ 1 ms), else ``730us/step``."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def format_eta(seconds: float) -> str:
    """Time left: ``42s``, ``3:07`` (minutes) or ``1:02:03`` (hours)."""
    if seconds > 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds > 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


class Progbar:
    """A progress bar over ``target`` steps (Keras 2's ``keras.utils.Progbar``, width 30).

    ``update(current, values)`` after each step; ``values`` are ``(name, number)`` pairs (or a
    dict) shown as given — the training loop passes running means. ``verbose``: 0 silent,
    1 bar, 2 one line at the end. ``stream``: where to write (``sys.stdout`` at the time of
    writing when None). ``clock``: seconds as a float (replaceable in tests).
    """

    def __init__(self, target: Optional[int], width: int = 30, verbose: int = 1,
                 stream: Optional[IO[str]] = None, interval: float = 0.05,
                 unit_name: str = "step", clock: Callable[[], float] = time.monotonic):
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name, self.clock = interval, unit_name, clock
        self._stream = stream
        self._values: dict = {}
        self._start = clock()
        self._last_update = float("-inf")
        self._time_after_first_step: Optional[float] = None
        self._previous_width = 0
        self._line_open = False  # a bar drawn in place, not yet ended by a newline

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    @property
    def dynamic(self) -> bool:
        """Whether the bar can be redrawn in place: only on a terminal."""
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _seconds_per_step(self, current: int, now: float) -> float:
        """Time per step; the first step (often slow: allocation, warm-up) is left out of the
        estimate once later steps exist, as Keras does."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per_step = (now - self._time_after_first_step) / (current - 1)
        else:
            per_step = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_step

    def line(self, current: int, finalize: bool, now: float, per_step: float) -> str:
        """The text of the bar at step ``current`` (without ``\\r`` or newline)."""
        if self.target is None:
            bar = f"{current:7d}/Unknown"
        else:
            digits = len(str(self.target))
            done = int(self.width * current / self.target) if self.target else self.width
            arrow = "" if done == 0 else "=" * (done - 1) + ("=" if current >= self.target else ">")
            bar = f"{current:{digits}d}/{self.target} [{arrow}{'.' * (self.width - done)}]"
        if finalize or self.target is None:
            info = f" - {now - self._start:.0f}s {format_time_per_unit(per_step, self.unit_name)}"
        else:
            info = f" - ETA: {format_eta(per_step * (self.target - current))}"
        for name, value in self._values.items():
            info += f" - {name}: {format_value(value)}"
        return bar + info

    def update(self, current: int, values: Optional[Values] = None,
               finalize: Optional[bool] = None) -> None:
        """Show step ``current`` (1-based) with ``values``; ``finalize`` (default: current ≥
        target) ends the line."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if values:
            pairs = values.items() if isinstance(values, Mapping) else values
            for name, value in pairs:
                self._values[name] = float(value)
        now = self.clock()
        per_step = self._seconds_per_step(current, now)
        if self.verbose == 1:
            if not finalize and (not self.dynamic or now - self._last_update < self.interval):
                return
            text = self.line(current, finalize, now, per_step)
            padding = " " * max(self._previous_width - len(text), 0)  # erase a longer old line
            self._previous_width = len(text)
            prefix = "\r" if self.dynamic else ""
            self.stream.write(prefix + text + padding + ("\n" if finalize else ""))
            self.stream.flush()
            self._line_open = not finalize
        elif self.verbose == 2 and finalize:
            count = f"{current}/{self.target}" if self.target is not None else f"{current}"
            text = (f"{count} - {now - self._start:.0f}s - "
                    f"{format_time_per_unit(per_step, self.unit_name)}")
            for name, value in self._values.items():
                text += f" - {name}: {format_value(value)}"
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last_update = now

    def end_line(self) -> None:
        """End a bar left half-drawn (training interrupted by Ctrl-C or an error), so what is
        printed next starts on its own line."""
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False
