"""Per-layer upload progress on stderr: a live line with bytes and rate on a TTY, plain periodic lines otherwise."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from llm_platform.logs import get_logger

log = get_logger("registry.progress")


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover


@dataclass
class _Layer:
    label: str
    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    sent_since_start: int = 0


class UploadProgress:
    """Thread-safe; `advance` is called from upload threads for every buffer sent."""

    def __init__(
        self, stream: TextIO | None = None, *, tty: bool | None = None, interval: float | None = None
    ):
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._interval = interval if interval is not None else (0.2 if self._tty else 10.0)
        self._lock = threading.Lock()
        self._layers: dict[str, _Layer] = {}
        self._last_render = time.monotonic()  # the first periodic line comes one interval in
        self._line_open = False

    def start(self, key: str, label: str, total: int) -> None:
        with self._lock:
            self._layers[key] = _Layer(label=label, total=total)

    def reset(self, key: str, offset: int) -> None:
        """A retry restarts (offset 0) or resumes (offset > 0) the layer."""
        with self._lock:
            layer = self._layers.get(key)
            if layer:
                layer.done = offset

    def advance(self, key: str, count: int) -> None:
        with self._lock:
            layer = self._layers.get(key)
            if layer is None:
                return
            layer.done += count
            layer.sent_since_start += count
            now = time.monotonic()
            if now - self._last_render >= self._interval:
                self._last_render = now
                self._render(now)

    def finish(self, key: str, outcome: str) -> None:
        with self._lock:
            layer = self._layers.pop(key, None)
            if layer is None:
                return
            self._clear_line()
            elapsed = max(time.monotonic() - layer.started, 1e-6)
            rate = f", {human_bytes(layer.sent_since_start / elapsed)}/s" if layer.sent_since_start else ""
            self._write(f"{outcome} {layer.label} ({human_bytes(layer.total)}{rate})\n")

    def close(self) -> None:
        with self._lock:
            self._clear_line()

    # -- rendering (lock held) -----------------------------------------------------------------------
    def _status(self, layer: _Layer, now: float) -> str:
        rate = layer.sent_since_start / max(now - layer.started, 1e-6)
        percent = 100.0 * layer.done / layer.total if layer.total else 100.0
        return (
            f"{layer.label} {human_bytes(layer.done)}/{human_bytes(layer.total)} "
            f"({percent:.0f}%) {human_bytes(rate)}/s"
        )

    def _render(self, now: float) -> None:
        if not self._layers:
            return
        if self._tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            line = " | ".join(self._status(layer, now) for layer in self._layers.values())
            self._write("\r\x1b[2K" + line[:width])
            self._line_open = True
        else:
            for layer in self._layers.values():
                self._write(f"uploading {self._status(layer, now)}\n")

    def _clear_line(self) -> None:
        if self._line_open:
            self._write("\r\x1b[2K")
            self._line_open = False

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed: progress is best effort, never a failure
            pass
