"""The one channel from the untrusted side back to the trusted side, and its strict reader.

Student code runs next to the writer, so every byte the reader gets is hostile. The
format is a stream of frames, no pickle and no compression:

    4-byte big-endian header length | JSON header (one flat object) | raw array bytes

The header is `{"t": kind, ...}` with a fixed set of kinds and fields. An `out` frame
lists its arrays as `[name, dtype, shape]`; their bytes follow, in that order. The
reader checks the header's size before reading it, its JSON nesting and every field's
type, and the arrays' total size (from dtype and shape) against the budget *before*
it waits for or allocates their bytes. Anything else is a `ChannelError`, which the
supervisor turns into that submission's verdict.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

MAX_HEADER = 16 << 10  # bytes of one JSON header
MAX_ARRAYS = 64  # arrays in one frame
MAX_NDIM = 4
MAX_FRAME_BYTES = 64 << 20  # array bytes of one frame (the training call's gradients are ~0.6 MB)
MAX_JOB_BYTES = 256 << 20  # everything one job may send, all restarts together
DTYPES = {"<f2", "<f4", "<f8", "|b1", "|u1", "<u2", "<u4", "<u8", "|i1", "<i2", "<i4", "<i8"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
_KINDS = {"cell": {"i"}, "cells_done": set(), "call": {"id"}, "error": {"id", "kind"},
          "out": {"id", "arrays"}, "done": set()}


class ChannelError(Exception):
    """The untrusted side sent something that is not a valid frame."""


@dataclass
class Frame:
    """One parsed message: its kind, header fields and (for `out`) its arrays."""

    kind: str
    fields: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


# --- writer (untrusted side) ----------------------------------------------------------

def write_frame(fd: int, t: str, arrays: dict[str, np.ndarray] | None = None, **fields: Any) -> None:
    """Send one frame of type `t` on `fd` (a pipe): header, then the arrays' raw bytes."""
    payload = []
    if arrays is not None:
        specs = []
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            arr = np.ascontiguousarray(arr).reshape(arr.shape)  # ascontiguousarray makes 0-d arrays 1-d
            if arr.dtype.str not in DTYPES:
                arr = arr.astype(np.float64)
            specs.append([name, arr.dtype.str, list(arr.shape)])
            payload.append(arr.tobytes())
        fields["arrays"] = specs
    header = json.dumps({"t": t, **fields}).encode()
    data = struct.pack(">I", len(header)) + header + b"".join(payload)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- reader (trusted side) ------------------------------------------------------------

def _depth_ok(text: str, limit: int = 4) -> bool:
    """Whether JSON `text` nests at most `limit` deep (checked before parsing it)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ChannelError("a frame header is not UTF-8") from None
    if not _depth_ok(text):
        raise ChannelError("a frame header nests too deep")
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise ChannelError("a frame header is not JSON") from None
    if not isinstance(header, dict) or header.get("t") not in _KINDS:
        raise ChannelError("a frame has no known kind")
    kind = header["t"]
    if set(header) != _KINDS[kind] | {"t"}:
        raise ChannelError(f"a '{kind}' frame has the wrong fields")
    if "i" in header and not (_is_int(header["i"]) and 0 <= header["i"] < 1 << 20):
        raise ChannelError("a cell index is not a small integer")
    for key in ("id", "kind"):
        if key in header and not (isinstance(header[key], str) and len(header[key]) <= 200):
            raise ChannelError(f"a frame's '{key}' is not a short string")
    return header


def _array_specs(header: dict[str, Any]) -> list[tuple[str, np.dtype, tuple[int, ...], int]]:
    """Validate an `out` frame's array list; return (name, dtype, shape, nbytes) each."""
    specs = header["arrays"]
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ChannelError("an output lists too many arrays")
    out, names, total = [], set(), 0
    for spec in specs:
        if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str)
                and isinstance(spec[1], str) and isinstance(spec[2], list)):
            raise ChannelError("an array description is malformed")
        name, dtype, shape = spec
        if not _NAME.fullmatch(name) or name in names or dtype not in DTYPES:
            raise ChannelError("an array has a bad name or type")
        if len(shape) > MAX_NDIM or not all(_is_int(n) and 0 <= n <= MAX_FRAME_BYTES for n in shape):
            raise ChannelError("an array has a bad shape")
        count = 1
        for n in shape:
            count *= n
        nbytes = count * np.dtype(dtype).itemsize
        total += nbytes
        if total > MAX_FRAME_BYTES:
            raise ChannelError("an output is too large")
        names.add(name)
        out.append((name, np.dtype(dtype), tuple(shape), nbytes))
    return out


class FrameReader:
    """Incremental, bounded parser of the frames arriving on a pipe."""

    def __init__(self, budget: int = MAX_JOB_BYTES) -> None:
        self.buffer = bytearray()
        self.budget = budget  # bytes the job may still send
        self._header: dict[str, Any] | None = None
        self._specs: list[tuple[str, np.dtype, tuple[int, ...], int]] = []
        self._need = 4

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Take bytes read from the pipe; yield the frames completed by them, each before
        anything after it is parsed: a malformed frame raises `ChannelError` only once the
        frames before it in the same read were taken (the job is blamed where it was)."""
        self.budget -= len(data)
        if self.budget < 0:
            raise ChannelError("the submission sent more data than allowed")
        self.buffer += data
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        while len(self.buffer) >= self._need:
            frame = self._step()
            if frame is not None:
                yield frame

    def _take(self, n: int) -> bytes:
        chunk = bytes(self.buffer[:n])
        del self.buffer[:n]
        return chunk

    def _step(self) -> Frame | None:
        if self._header is None and self._need == 4:
            (length,) = struct.unpack(">I", self._take(4))
            if not 2 <= length <= MAX_HEADER:
                raise ChannelError("a frame header has a bad length")
            self._need = length
            self._header = {}
            return None
        if self._header == {}:
            header = _parse_header(self._take(self._need))
            self._specs = _array_specs(header) if header["t"] == "out" else []
            self._header = header
            self._need = sum(s[3] for s in self._specs)
            if self._need:
                return None
        header, self._header = self._header, None
        assert header is not None
        arrays = {}
        for name, dtype, shape, nbytes in self._specs:
            arrays[name] = np.frombuffer(self._take(nbytes), dtype=dtype).reshape(shape).copy()
        self._need = 4
        fields = {k: v for k, v in header.items() if k not in ("t", "arrays")}
        return Frame(header["t"], fields, arrays)
