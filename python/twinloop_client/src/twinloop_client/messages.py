"""Typed views of what the daemon publishes (streams 16-28), and :func:`decode` to make them.

Each class keeps the message's :class:`~twinloop_client.protocol.Header` and, for JSON streams,
the parsed payload as ``raw`` so that fields added by a newer daemon are not lost (new JSON
fields are a compatible change of protocol version 1, docs/protocol.md §10).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .protocol import FLAG_ONSET, ClockDomain, Dtype, Header, Stream, parse


@dataclass
class Activity:
    """Per-cell activity of one imaging frame (`f32 [cells]`)."""

    header: Header
    values: np.ndarray

    @property
    def frame_seq(self) -> int:
        """The imaging frame's `seq` (per plane and channel)."""
        return self.header.seq

    @property
    def t_ns(self) -> int:
        return self.header.t_ns

    @property
    def plane(self) -> int:
        return self.header.plane


@dataclass
class Prediction(Activity):
    """The twin's one-step-ahead prediction of a frame's activity, made before it was seen."""


@dataclass
class Status:
    """The 100 ms heartbeat: state, counters and the fixed facts a bridge needs.

    `recording` turns False once a write to the session log failed; `clocks_ticking` while a
    stream on a device clock sends samples without its clock's ticks (docs/protocol.md §0).
    Both are None from a daemon that does not send them.
    """

    header: Header
    state: str
    t_s: float
    counters: Dict[str, Any]
    flow_window: Optional[int]
    protocol_version: Optional[int]
    imaging: Dict[str, int]
    recording: Optional[bool]
    clocks_ticking: Optional[bool]
    raw: Dict[str, Any]

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    @property
    def rejected(self) -> Dict[str, int]:
        """Rejections so far by label (labels with zero omitted)."""
        return dict(self.counters.get("rejected", {}))

    @property
    def garbage_messages(self) -> int:
        """Messages that were not twinloop traffic at all (no part is a topic or starts with
        the magic): counted apart from the rejections, which mean a bridge's bug."""
        return int(self.counters.get("garbage_messages", 0))


@dataclass
class Ack:
    """Flow-control credit: `index` of the last two-photon message handed on since `hello`.

    `epoch` echoes the `hello` it answers (0 when that hello named none); None when the daemon
    sent an empty payload, as daemons before acks carried epochs do.
    """

    header: Header
    index: int
    epoch: Optional[int]


@dataclass
class Decision:
    """The selector's choice of a trial's stimulus, and why."""

    header: Header
    trial: int
    stimulus: int
    name: str
    spec: Dict[str, Any]
    policy: str
    mode: str
    frames_seen: int
    after_frame_seq: Optional[int]
    after_frame_t_ns: int
    onsets_seen: int
    score: Optional[float]
    alternatives: List[Dict[str, Any]]
    accuracy: Optional[Dict[str, Any]]
    raw: Dict[str, Any]


@dataclass
class StimulusOnset:
    """A trial's stimulus came on screen (`onset_t_ns` is the onset flip's rig time)."""

    header: Header
    trial: int
    stimulus: int
    name: str
    spec: Dict[str, Any]
    onset_t_ns: int
    display_frame: int
    raw: Dict[str, Any]


@dataclass
class Flip:
    """A display flip; `trial` is -1 on the inter-trial gray."""

    header: Header
    display_frame: int
    t_ns: int
    trial: int
    onset: bool


@dataclass
class View(Flip):
    """What the mouse sees on a flip, `u8 [view_height, view_width]`."""

    image: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))


@dataclass
class ClockMapping:
    """A line from device to rig time: `rig = rig_at_ref_ns + rate * (dev - dev_ref_ns)`."""

    dev_ref_ns: int
    rig_at_ref_ns: float
    rate: float

    def to_rig_ns(self, t_dev_ns: int) -> int:
        return int(round(self.rig_at_ref_ns + self.rate * (t_dev_ns - self.dev_ref_ns)))

    @property
    def drift_ppm(self) -> float:
        """Positive when the device clock runs slow against the rig's (rate > 1)."""
        return (self.rate - 1.0) * 1e6


@dataclass
class ClockUpdate:
    """A device clock's new mapping onto the rig clock; `fit` is None before the first fit."""

    header: Header
    domain: ClockDomain
    generation: int
    dev_ticks: int
    rig_ticks: int
    state: str
    mapping: ClockMapping
    fit: Optional[Dict[str, Any]]
    raw: Dict[str, Any]


@dataclass
class Behaviour:
    """Behaviour at one imaging frame; values are None where missing, `*_fill` says how filled."""

    header: Header
    frame_seq: int
    t_ns: int
    pupil_x_px: Optional[float]
    pupil_y_px: Optional[float]
    pupil_radius_px: Optional[float]
    treadmill_cm_s: Optional[float]
    pupil_fill: str
    treadmill_fill: str
    raw: Dict[str, Any]


@dataclass
class Cells:
    """One plane's cells, in activity order: scan rows, offsets after the frame time, outlines."""

    header: Header
    plane: int
    lines: int
    frame_period_s: float
    rows: np.ndarray
    offsets_s: np.ndarray
    x_px: np.ndarray
    radius_px: np.ndarray
    raw: Dict[str, Any]

    def times_ns(self, frame_t_ns: int) -> np.ndarray:
        """Each cell's time within the frame stamped `frame_t_ns` (docs/protocol.md §7)."""
        return frame_t_ns + self.offsets_s * 1e9


@dataclass
class Registration:
    """Motion correction of one imaging frame: rigid shift (px, suite2p's sign) and quality."""

    header: Header
    frame_seq: int
    t_ns: int
    plane: int
    dy_px: float
    dx_px: float
    quality: float
    peak_snr: float
    flags: int
    raw: Dict[str, Any]


@dataclass
class InceptionNote:
    """One of the inception protocol's notes (``event`` starts ``inception.``), as logged, or a
    verify presentation's measured responses (``inception.response``)."""

    header: Header
    event: str
    raw: Dict[str, Any]


Message = Union[Activity, Prediction, Status, Ack, Decision, StimulusOnset, Flip, View,
                ClockUpdate, Behaviour, Cells, Registration, InceptionNote]


def _json(payload: bytes) -> Dict[str, Any]:
    value = json.loads(payload.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _floats(v: Optional[Sequence[float]]) -> np.ndarray:
    return np.asarray(v if v is not None else [], dtype=np.float64)


def decode(frames: Sequence[bytes]) -> Message:
    """Decode one published message into its typed object.

    Raises :class:`~twinloop_client.protocol.ProtocolError` for a malformed message and
    ``ValueError`` for an input stream or a payload that is not what the stream carries.
    """
    h, payload = parse(frames)
    s = Stream(h.stream)
    if s in (Stream.ACTIVITY, Stream.PREDICTION):
        values = np.frombuffer(payload, "<f4").reshape(h.shape)
        return (Activity if s == Stream.ACTIVITY else Prediction)(h, values)
    if s == Stream.ACK:
        # The hello's epoch as u64 [1]; daemons before epochs sent an empty payload.
        if not payload:
            return Ack(h, h.seq, None)
        if h.dtype != Dtype.U64 or h.shape != (1,):
            raise ValueError(f"an ack carries its epoch as u64 [1], not {h.dtype} {h.shape}")
        return Ack(h, h.seq, struct.unpack("<Q", payload)[0])
    if s in (Stream.FLIP, Stream.VIEW):
        onset = bool(h.flags & FLAG_ONSET)
        if s == Stream.FLIP:
            return Flip(h, display_frame=h.seq, t_ns=h.t_ns, trial=h.aux, onset=onset)
        return View(h, display_frame=h.seq, t_ns=h.t_ns, trial=h.aux, onset=onset,
                    image=np.frombuffer(payload, np.uint8).reshape(h.shape))
    if s.is_input:
        raise ValueError(f"{s.name} is an input stream: the daemon never publishes it")
    v = _json(payload)
    if s == Stream.STATUS:
        return Status(h, state=v["state"], t_s=v.get("t_s", 0.0), counters=v.get("counters", {}),
                      flow_window=v.get("flow_window"),
                      protocol_version=v.get("protocol_version"),
                      imaging=v.get("imaging", {}), recording=v.get("recording"),
                      clocks_ticking=v.get("clocks_ticking"), raw=v)
    if s == Stream.DECISION:
        return Decision(h, trial=v["trial"], stimulus=v["stimulus"], name=v["name"],
                        spec=v["spec"], policy=v["policy"], mode=v.get("mode", "random"),
                        frames_seen=v["frames_seen"], after_frame_seq=v.get("after_frame_seq"),
                        after_frame_t_ns=v["after_frame_t_ns"],
                        onsets_seen=v.get("onsets_seen", 0), score=v.get("score"),
                        alternatives=v.get("alternatives", []), accuracy=v.get("accuracy"),
                        raw=v)
    if s == Stream.STIMULUS:
        return StimulusOnset(h, trial=v["trial"], stimulus=v["stimulus"], name=v["name"],
                             spec=v["spec"], onset_t_ns=v["onset_t_ns"],
                             display_frame=v["display_frame"], raw=v)
    if s == Stream.CLOCK:
        m = v["mapping"]
        return ClockUpdate(h, domain=ClockDomain[str(v["domain"]).upper()],
                           generation=v["generation"], dev_ticks=v["dev_ticks"],
                           rig_ticks=v["rig_ticks"], state=v["state"],
                           mapping=ClockMapping(m["dev_ref_ns"], m["rig_at_ref_ns"], m["rate"]),
                           fit=v.get("fit"), raw=v)
    if s == Stream.BEHAVIOUR:
        return Behaviour(h, frame_seq=v["frame_seq"], t_ns=v["t_ns"],
                         pupil_x_px=v.get("pupil_x_px"), pupil_y_px=v.get("pupil_y_px"),
                         pupil_radius_px=v.get("pupil_radius_px"),
                         treadmill_cm_s=v.get("treadmill_cm_s"), pupil_fill=v["pupil"],
                         treadmill_fill=v["treadmill"], raw=v)
    if s == Stream.CELLS:
        return Cells(h, plane=v.get("plane", 0), lines=v["lines"],
                     frame_period_s=v["frame_period_s"], rows=_floats(v["rows"]),
                     offsets_s=_floats(v["offsets_s"]), x_px=_floats(v.get("x_px")),
                     radius_px=_floats(v.get("radius_px")), raw=v)
    if s == Stream.REGISTRATION:
        return Registration(h, frame_seq=v["frame_seq"], t_ns=v["t_ns"], plane=v["plane"],
                            dy_px=v["dy_px"], dx_px=v["dx_px"], quality=v["quality"],
                            peak_snr=v["peak_snr"], flags=v["flags"], raw=v)
    if s == Stream.INCEPTION:
        return InceptionNote(h, event=v["event"], raw=v)
    raise ValueError(f"no decoder for stream {s.name}")  # a code added to Stream but not here
