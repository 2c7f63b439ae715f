"""The twinloop wire protocol, version 1 (docs/protocol.md): codes, the 64-byte header.

Everything here mirrors ``rig/src/vocab/protocol/`` in the daemon; the test
``tests/tests/python_client.rs`` compares :func:`describe` with the Rust enums so the two
cannot drift. Run ``python -m twinloop_client.protocol`` to print that description as JSON.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Sequence, Tuple

import numpy as np

MAGIC = b"TWLP"
VERSION = 1
#: magic, version, stream, dtype, ndim, plane, channel, flags, seq, t_ns, shape x4, aux, sent_ns
HEADER_FORMAT = "<4sHHBBBBIQq4Iqq"
HEADER = struct.Struct(HEADER_FORMAT)
HEADER_LEN = HEADER.size  # 64
#: Header field names in wire order, with their byte offsets (the table of docs/protocol.md §3).
HEADER_FIELDS: Tuple[Tuple[str, int], ...] = (
    ("magic", 0), ("version", 4), ("stream", 6), ("dtype", 8), ("ndim", 9), ("plane", 10),
    ("channel", 11), ("flags", 12), ("seq", 16), ("t_ns", 24), ("shape", 32), ("aux", 48),
    ("sent_ns", 56),
)
#: `flags` bit 0 on `flip` and `view`: this flip is a trial's onset.
FLAG_ONSET = 1


class Stream(enum.IntEnum):
    """Stream codes. Inputs (1-15) go to the daemon's PULL socket; outputs (16-31) come on PUB."""

    TWO_PHOTON = 1
    EYE_CAMERA = 2
    TREADMILL = 3
    SYNC = 4
    CONTROL = 5
    ACTIVITY = 16
    STIMULUS = 17
    FLIP = 18
    VIEW = 19
    DECISION = 20
    STATUS = 21
    ACK = 22
    BEHAVIOUR = 23
    CLOCK = 24
    CELLS = 25
    PREDICTION = 26
    REGISTRATION = 27
    INCEPTION = 28

    @property
    def topic(self) -> bytes:
        """The topic frame (also the subscription prefix): the lower-case name in ASCII."""
        return self.name.lower().encode()

    @property
    def is_input(self) -> bool:
        return self.value < 16

    @classmethod
    def from_topic(cls, topic: bytes) -> "Stream":
        return cls[topic.decode("ascii").upper()]


class Dtype(enum.IntEnum):
    """Element type of a payload; JSON is UTF-8 text with element size 1."""

    U8 = 1
    U16 = 2
    I16 = 3
    U32 = 4
    I32 = 5
    U64 = 6
    I64 = 7
    F32 = 8
    F64 = 9
    JSON = 32

    @property
    def numpy(self) -> np.dtype:
        """The little-endian numpy dtype of one element (bytes for JSON)."""
        return np.dtype(_NUMPY[self])

    @property
    def size(self) -> int:
        return self.numpy.itemsize

    @classmethod
    def of(cls, array: np.ndarray) -> "Dtype":
        """The wire dtype of a numpy array; ``ValueError`` for one the protocol lacks."""
        for code, name in _NUMPY.items():
            if code != Dtype.JSON and np.dtype(name) == array.dtype.newbyteorder("<"):
                return code
        raise ValueError(f"numpy dtype {array.dtype} has no wire code")


_NUMPY: Dict[Dtype, str] = {
    Dtype.U8: "<u1", Dtype.U16: "<u2", Dtype.I16: "<i2", Dtype.U32: "<u4", Dtype.I32: "<i4",
    Dtype.U64: "<u8", Dtype.I64: "<i8", Dtype.F32: "<f4", Dtype.F64: "<f8", Dtype.JSON: "u1",
}

_ANY: FrozenSet[Dtype] = frozenset(Dtype)
#: The dtypes each stream may carry (the daemon rejects others as `dtype_not_allowed`).
ALLOWED: Dict[Stream, FrozenSet[Dtype]] = {
    Stream.TWO_PHOTON: frozenset({Dtype.U16, Dtype.I16}),
    Stream.EYE_CAMERA: frozenset({Dtype.U8}),
    Stream.TREADMILL: frozenset({Dtype.I64}),
    Stream.SYNC: _ANY,
    Stream.CONTROL: frozenset({Dtype.JSON}),
    Stream.ACTIVITY: frozenset({Dtype.F32}),
    Stream.STIMULUS: frozenset({Dtype.JSON}),
    Stream.FLIP: _ANY,
    Stream.VIEW: frozenset({Dtype.U8}),
    Stream.DECISION: frozenset({Dtype.JSON}),
    Stream.STATUS: frozenset({Dtype.JSON}),
    Stream.ACK: _ANY,
    Stream.BEHAVIOUR: frozenset({Dtype.JSON}),
    Stream.CLOCK: frozenset({Dtype.JSON}),
    Stream.CELLS: frozenset({Dtype.JSON}),
    Stream.PREDICTION: frozenset({Dtype.F32}),
    Stream.REGISTRATION: frozenset({Dtype.JSON}),
    Stream.INCEPTION: frozenset({Dtype.JSON}),
}


class SyncCode(enum.IntEnum):
    """What a `sync` message marks, carried in its `aux`."""

    FRAME_CLOCK = 1
    PHOTODIODE_RISE = 2
    PHOTODIODE_FALL = 3
    TRIAL_MARKER = 4
    #: A shared sync pulse as one clock domain saw it: `channel` = the ClockDomain.
    CLOCK_TICK = 5


class ClockDomain(enum.IntEnum):
    """A clock that timestamps samples, carried in `channel` of a clock tick."""

    RIG = 0
    TWO_PHOTON = 1
    EYE_CAMERA = 2
    TREADMILL = 3
    PHOTODIODE = 4


class ProtocolError(ValueError):
    """A message that does not follow the protocol; `label` is the daemon's rejection label."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"{label}: {reason}")
        self.label = label


@dataclass(frozen=True)
class Header:
    """The 64-byte header of every message. `shape` holds the `ndim` dims in use."""

    stream: int
    dtype: int
    shape: Tuple[int, ...] = ()
    seq: int = 0
    t_ns: int = 0
    aux: int = 0
    plane: int = 0
    channel: int = 0
    flags: int = 0
    sent_ns: int = 0
    version: int = VERSION
    magic: bytes = field(default=MAGIC, repr=False)

    def encode(self) -> bytes:
        """The header's 64 bytes. Fields are not checked: a bridge may send anything."""
        if len(self.shape) > 4:
            raise ValueError(f"shape {self.shape} has more than 4 dims")
        dims = list(self.shape) + [0] * (4 - len(self.shape))
        return HEADER.pack(self.magic, self.version, self.stream, self.dtype, len(self.shape),
                           self.plane, self.channel, self.flags, self.seq, self.t_ns, *dims,
                           self.aux, self.sent_ns)

    @classmethod
    def decode(cls, raw: bytes) -> "Header":
        """Decode and check a header as the daemon does (not its payload: see `payload_len`)."""
        if len(raw) != HEADER_LEN:
            raise ProtocolError("header_length", f"header is {len(raw)} bytes, not {HEADER_LEN}")
        (magic, version, stream, dtype, ndim, plane, channel, flags, seq, t_ns,
         d0, d1, d2, d3, aux, sent_ns) = HEADER.unpack(raw)
        if magic != MAGIC:
            raise ProtocolError("bad_magic", f"magic {magic!r}")
        if version != VERSION:
            raise ProtocolError("unsupported_version", f"version {version}")
        if stream not in Stream._value2member_map_:
            raise ProtocolError("unknown_stream", f"stream code {stream}")
        if dtype not in Dtype._value2member_map_:
            raise ProtocolError("unknown_dtype", f"dtype code {dtype}")
        if ndim > 4:
            raise ProtocolError("ndim", f"ndim {ndim}")
        s, d = Stream(stream), Dtype(dtype)
        if d not in ALLOWED[s]:
            raise ProtocolError("dtype_not_allowed", f"{s.topic.decode()} does not carry {d.name}")
        return cls(stream=s, dtype=d, shape=(d0, d1, d2, d3)[:ndim], seq=seq, t_ns=t_ns, aux=aux,
                   plane=plane, channel=channel, flags=flags, sent_ns=sent_ns)

    @property
    def payload_len(self) -> int:
        """Bytes the shape promises (`ndim = 0` is a scalar: one element)."""
        n = 1
        for d in self.shape:
            n *= d
        return n * Dtype(self.dtype).size


def encode(stream: Stream, dtype: Dtype, shape: Sequence[int], payload: bytes, **fields: Any
           ) -> List[bytes]:
    """The three frames `[topic][header][payload]` of a message on `stream`."""
    h = Header(stream=stream, dtype=dtype, shape=tuple(shape), **fields)
    return [Stream(stream).topic, h.encode(), payload]


def json_payload(value: object) -> Tuple[Tuple[int], bytes]:
    """A JSON payload and its shape `[n_bytes]`."""
    body = json.dumps(value).encode()
    return (len(body),), body


def parse(frames: Sequence[bytes]) -> Tuple[Header, bytes]:
    """Check one received message as the daemon checks its inputs; the header and payload."""
    if len(frames) != 3:
        raise ProtocolError("frame_count", f"{len(frames)} frames, not 3")
    topic, raw, payload = frames
    h = Header.decode(bytes(raw))
    if bytes(topic) != Stream(h.stream).topic:
        raise ProtocolError("topic_mismatch", f"topic {bytes(topic)!r} on {Stream(h.stream).name}")
    if len(payload) != h.payload_len:
        raise ProtocolError("payload_size", f"{len(payload)} bytes, shape promises {h.payload_len}")
    return h, bytes(payload)


def describe() -> Dict[str, Any]:
    """This module's constants as plain JSON, for the drift test against the Rust enums."""
    return {
        "magic": MAGIC.decode(),
        "version": VERSION,
        "header_format": HEADER_FORMAT,
        "header_len": HEADER_LEN,
        "header_fields": [list(f) for f in HEADER_FIELDS],
        "streams": [{"code": int(s), "topic": s.topic.decode(), "input": s.is_input,
                     "dtypes": sorted(int(d) for d in ALLOWED[s])} for s in Stream],
        "dtypes": [{"code": int(d), "name": d.name.lower(), "size": d.size} for d in Dtype],
        "sync_codes": {c.name.lower(): int(c) for c in SyncCode},
        "clock_domains": {c.name.lower(): int(c) for c in ClockDomain},
        "flag_onset": FLAG_ONSET,
    }


if __name__ == "__main__":
    print(json.dumps(describe()))
