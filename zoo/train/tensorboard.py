"""TensorBoard event files without TensorFlow: one file per run, appended across resumes.

``EventLog(folder, resume_step)`` keeps one ``events.out.tfevents.*`` file in
``folder``. The summaries themselves (scalar, image, text protos) are built by
``tensorboardX``, which needs neither TensorFlow nor torch; what it does not
do is reopen a file: its writer starts a new one per process, so a resumed
run would leave the rewound steps of the first attempt beside the new ones.
Here a resumed run first rewrites its file without the events after the
checkpoint it restored (and without a record a killed process left half
written), then appends, so every tag's steps increase strictly through all
attempts.

The file is the TFRecord framing TensorBoard reads: per record a little-endian
uint64 length, the masked CRC32C of those 8 bytes, the serialised ``Event``,
and its masked CRC32C.
"""

from __future__ import annotations

import functools
import glob
import os
import socket
import struct
import sys
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tensorboardX.proto import event_pb2

PATTERN = "events.out.tfevents.*"


@functools.cache
def _tbx() -> SimpleNamespace:
    """tensorboardX's parts, imported on first use (commands that write no events skip it).

    tensorboardX's package imports torch, when installed, only to recognise torch tensors,
    which zoo never passes: 1-3 s of every run's start-up. Unless torch is already loaded,
    it is hidden from that import (``sys.modules['torch'] = None`` makes ``import torch``
    raise ImportError, which tensorboardX expects) and put back at once.
    """
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None
    try:
        from tensorboardX import summary
        from tensorboardX.proto import event_pb2
        from tensorboardX.record_writer import masked_crc32c
    finally:
        if hide:
            del sys.modules["torch"]
    return SimpleNamespace(summary=summary, Event=event_pb2.Event, crc=masked_crc32c)


def read_events(path: str) -> list[event_pb2.Event]:
    """Every whole record of an event file, in order; stops at a truncated or corrupt one."""
    with open(path, "rb") as f:
        data = f.read()
    events, pos = [], 0
    while pos + 12 <= len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        end = pos + 12 + length + 4
        if header_crc != _tbx().crc(header) or end > len(data):
            break
        body = data[pos + 12:pos + 12 + length]
        if struct.unpack("<I", data[end - 4:end])[0] != _tbx().crc(body):
            break
        events.append(_tbx().Event.FromString(body))
        pos = end
    return events


def _record(event: event_pb2.Event) -> bytes:
    body = event.SerializeToString()
    header = struct.pack("<Q", len(body))
    crc = _tbx().crc
    return header + struct.pack("<I", crc(header)) + body + struct.pack("<I", crc(body))


class EventLog:
    """Appends scalars, images and text to the one event file of ``folder``.

    ``resume_step``: the step the run restarts from; events of later steps (a
    previous attempt's, after its last checkpoint) are dropped first. 0 starts
    a new file if there is none.
    """

    def __init__(self, folder: str, resume_step: int = 0):
        os.makedirs(folder, exist_ok=True)
        existing = sorted(glob.glob(os.path.join(folder, PATTERN)))
        if existing:
            self.path = existing[-1]
            kept = [e for e in read_events(self.path)
                    if e.HasField("file_version") or e.step <= resume_step]
            tmp = self.path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(b"".join(_record(e) for e in kept))
            os.replace(tmp, self.path)
            self._file = open(self.path, "ab")
        else:
            name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
            self.path = os.path.join(folder, name)
            self._file = open(self.path, "ab")
            self._write(_tbx().Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: event_pb2.Event) -> None:
        self._file.write(_record(event))

    def _summary(self, step: int, summary) -> None:
        self._write(_tbx().Event(wall_time=time.time(), step=int(step), summary=summary))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._summary(step, _tbx().summary.scalar(tag, float(value)))

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """image [Y, X, C] uint8 (C = 1, 3 or 4)."""
        self._summary(step, _tbx().summary.image(tag, np.asarray(image), dataformats="HWC"))

    def text(self, tag: str, text: str, step: int) -> None:
        """Markdown, as TensorBoard's text plugin renders it."""
        self._summary(step, _tbx().summary.text(tag, text))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
