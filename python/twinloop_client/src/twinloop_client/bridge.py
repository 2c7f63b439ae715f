"""`Bridge`: a rig's data into the daemon, in the protocol's connection order, within its window.

    with Bridge("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556") as b:
        b.connect()                 # SUB, first heartbeat, then PUSH
        b.hello(source="my rig")
        for k, frame in enumerate(frames):
            b.two_photon(frame, t_ns=k * 33_333_333)   # waits for credit (acks)
        b.end()
        final = b.wait_ended()

Sequence numbers (per stream, plane and channel), `sent_ns` and the ack window are handled
here; :meth:`Bridge.send_raw` sends any frames at all, for testing a daemon's rejections.
"""

from __future__ import annotations

import collections
import logging
import secrets
import time
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import zmq

from .messages import Ack, Message, Status
from .protocol import ClockDomain, Dtype, Header, Stream, SyncCode, json_payload
from .subscriber import Subscriber, Topic

log = logging.getLogger(__name__)


class FlowTimeout(TimeoutError):
    """No ack came while the window was full: the daemon is gone or rejects the frames."""


class Bridge:
    """A PUSH socket to the daemon's ingest endpoint and a SUB socket for its acks and status.

    `subscribe` adds output streams to receive while sending; they go to `on_message` if given,
    else into :attr:`inbox` (unbounded: drain it, or pass a callback). `window` overrides the
    daemon's announced `flow_window`; `sndhwm` bounds libzmq's own send queue (default: eight
    messages per frame of window, for the sync, treadmill and eye messages sent between
    frames). `host_clock = False` sends `sent_ns = 0`, for a bridge on another machine than
    the daemon (docs/protocol.md §7).
    """

    def __init__(self, ingest: str, publish: str, *, subscribe: Iterable[Topic] = (),
                 on_message: Optional[Callable[[Message], None]] = None,
                 window: Optional[int] = None, sndhwm: Optional[int] = None,
                 host_clock: bool = True, linger_ms: int = 5000,
                 context: Optional[zmq.Context[Any]] = None) -> None:
        self.context = context or zmq.Context()
        self._own_context = context is None
        self.ingest = ingest
        self.sub = Subscriber(publish, [Stream.STATUS, Stream.ACK, *subscribe],
                              context=self.context)
        self.push: Optional[zmq.Socket[bytes]] = None
        self.on_message = on_message
        #: Subscribed messages other than status and ack, when there is no `on_message`.
        self.inbox: Deque[Message] = collections.deque()
        self.window = window
        self._sndhwm = sndhwm
        self._linger_ms = linger_ms
        self._host_clock = host_clock
        #: The epoch of the latest `hello` (0 before it).
        self.epoch = 0
        #: Index of the last two-photon message the daemon acknowledged since `hello` (-1: none).
        self.acked = -1
        #: Two-photon messages sent since `hello`.
        self.sent_two_photon = 0
        #: Acks ignored because they answer an earlier `hello`.
        self.stale_acks = 0
        self._next_seq: Dict[Tuple[int, int, int], int] = collections.defaultdict(int)
        self._warned_unticked = False

    @property
    def status(self) -> Optional[Status]:
        """The newest heartbeat (None before the first)."""
        return self.sub.status

    def connect(self, timeout_s: float = 10.0) -> Status:
        """SUB is already connected: wait for its first heartbeat, then connect PUSH."""
        status = self.sub.wait_for_status(timeout_s)
        if self.window is None:
            self.window = int(status.flow_window or 32)
        self.push = self.context.socket(zmq.PUSH)
        # With libzmq, SNDHWM makes a sender that ignores acks block rather than queue.
        self.push.setsockopt(zmq.SNDHWM, self._sndhwm or 8 * self.window)
        self.push.setsockopt(zmq.LINGER, self._linger_ms)
        self.push.connect(self.ingest)
        return status

    def hello(self, epoch: Optional[int] = None, **fields: object) -> int:
        """Send `hello` (resets the daemon's sequence tracking and ack count) with an epoch that
        acks echo; returns it. A random nonzero 53-bit number by default, exact in any JSON
        reader. Numbering and the window restart too."""
        self.epoch = epoch if epoch is not None else (secrets.randbits(53) or 1)
        self._next_seq.clear()
        self.acked, self.sent_two_photon = -1, 0
        self.control("hello", epoch=self.epoch, **fields)
        return self.epoch

    def control(self, event: str, **fields: object) -> None:
        """A `control` message `{"event": event, **fields}` (not sequence-checked)."""
        shape, body = json_payload({"event": event, **fields})
        self.send(Stream.CONTROL, Dtype.JSON, shape, body)

    def end(self, **fields: object) -> None:
        """Send `end`: the daemon drains and ends the session."""
        self.control("end", **fields)

    def two_photon(self, frame: np.ndarray, t_ns: int, *, plane: int = 0, channel: int = 0,
                   frame_number: Optional[int] = None, timeout_s: float = 5.0) -> int:
        """Send one `u16` or `i16` `[height, width]` frame, first waiting (up to `timeout_s`) for
        credit. `frame_number` (`aux`) defaults to the frame's index since `hello`. Returns its
        `seq`."""
        if frame.ndim != 2 or Dtype.of(frame) not in (Dtype.U16, Dtype.I16):
            raise ValueError(f"a two-photon frame is u16 or i16 [h, w], got {frame.dtype} "
                             f"{frame.shape}")
        imaging = self.status.imaging if self.status else {}
        if imaging and tuple(frame.shape) != (imaging["height"], imaging["width"]):
            raise ValueError(f"frame {frame.shape} is not the daemon's "
                             f"[{imaging['height']}, {imaging['width']}]")
        if imaging and not (plane < imaging["planes"] and channel < imaging["channels"]):
            raise ValueError(f"plane {plane}, channel {channel} out of the daemon's "
                             f"{imaging['planes']} planes, {imaging['channels']} channels")
        self.wait_for_credit(timeout_s)
        aux = self.sent_two_photon if frame_number is None else frame_number
        seq = self._array(Stream.TWO_PHOTON, frame, t_ns, aux=aux, plane=plane, channel=channel)
        self.sent_two_photon += 1
        return seq

    def eye_camera(self, frame: np.ndarray, t_ns: int, frame_number: int = 0) -> int:
        """Send one `u8` `[height, width]` eye-camera frame."""
        if frame.ndim != 2 or Dtype.of(frame) != Dtype.U8:
            raise ValueError(f"an eye frame is u8 [h, w], got {frame.dtype} {frame.shape}")
        return self._array(Stream.EYE_CAMERA, frame, t_ns, aux=frame_number)

    def treadmill(self, counts: int, t_ns: int) -> int:
        """Send the encoder's cumulative counts at `t_ns`."""
        return self._array(Stream.TREADMILL, np.array([counts], "<i8"), t_ns)

    def sync(self, code: SyncCode, t_ns: int, channel: int = 0) -> int:
        """Send a sync event (no payload). Only clock ticks are used live; others are recorded."""
        return self.send(Stream.SYNC, Dtype.U8, (0,), b"", t_ns=t_ns, aux=int(code),
                         channel=channel)

    def clock_tick(self, domain: ClockDomain, t_ns: int) -> int:
        """One shared sync pulse as `domain`'s clock saw it, at that clock's `t_ns`. Send each
        pulse's rig tick (domain 0) before the devices' ticks of the same pulse."""
        return self.sync(SyncCode.CLOCK_TICK, t_ns, channel=int(domain))

    def _array(self, stream: Stream, a: np.ndarray, t_ns: int, **fields: int) -> int:
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        return self.send(stream, Dtype.of(a), a.shape, a, t_ns=t_ns, **fields)

    def send(self, stream: Stream, dtype: Dtype, shape: Sequence[int], payload: Any, *,
             t_ns: int = 0, aux: int = 0, plane: int = 0, channel: int = 0) -> int:
        """Send one message, numbered for its (stream, plane, channel); returns its `seq`. The
        payload is anything with the buffer protocol (bytes, a contiguous numpy array)."""
        if self.push is None:
            raise RuntimeError("connect() first: PUSH connects after the first heartbeat")
        key = (int(stream), plane, channel)
        seq = self._next_seq[key]
        self._next_seq[key] = seq + 1
        h = Header(stream=stream, dtype=dtype, shape=tuple(shape), seq=seq, t_ns=t_ns, aux=aux,
                   plane=plane, channel=channel,
                   sent_ns=time.monotonic_ns() if self._host_clock else 0)
        self.push.send_multipart([Stream(stream).topic, h.encode(), payload])
        return seq

    def send_raw(self, frames: List[bytes]) -> None:
        """Send these frames as one message, unchecked and unnumbered (tests of rejections)."""
        if self.push is None:
            raise RuntimeError("connect() first")
        self.push.send_multipart(frames)

    def next_seq(self, stream: Stream, plane: int = 0, channel: int = 0) -> int:
        """The `seq` the next message of (stream, plane, channel) will carry."""
        return self._next_seq[(int(stream), plane, channel)]

    def wait_for_credit(self, timeout_s: float = 5.0) -> None:
        """Block until one more two-photon frame fits the window (docs/protocol.md §6)."""
        window = self.window or 32
        deadline = time.monotonic() + timeout_s
        self.pump(0)
        while self.sent_two_photon - (self.acked + 1) >= window:
            left = deadline - time.monotonic()
            if left <= 0 or not self.pump(int(left * 1000)):
                rejected = self.status.rejected if self.status else {}
                raise FlowTimeout(f"no ack for {timeout_s} s with "
                                  f"{self.sent_two_photon - self.acked - 1} frames "
                                  f"unacknowledged; the daemon rejected so far: {rejected}")

    def pump(self, timeout_ms: int = 0) -> bool:
        """Handle what has been published, waiting up to `timeout_ms` for the first message.
        False when nothing came."""
        msg = self.sub.recv(timeout_ms)
        if msg is None:
            return False
        while msg is not None:
            self._handle(msg)
            msg = self.sub.recv(0)
        return True

    def _handle(self, msg: Message) -> None:
        if isinstance(msg, Ack):
            # An 8-byte epoch that is not ours answers an earlier hello; an empty payload is a
            # daemon without epochs, whose acks are taken as they come.
            if msg.epoch is not None and msg.epoch != self.epoch:
                self.stale_acks += 1
                return
            self.acked = max(self.acked, msg.index)
        elif isinstance(msg, Status):
            # The subscriber keeps the newest; a device-clocked stream without ticks is the
            # config mistake docs/protocol.md §0 describes: say so once, here, too.
            if msg.clocks_ticking is False and not self._warned_unticked:
                self._warned_unticked = True
                log.warning("the daemon has a stream on a device clock that sends no ticks "
                            "(%s domains): send that clock's ticks (clock_tick) or set the "
                            "stream to \"rig\" in [clocks]",
                            msg.counters.get("clock_domains_unticked"))
        elif self.on_message is not None:
            self.on_message(msg)
        else:
            self.inbox.append(msg)

    def wait_ended(self, timeout_s: float = 20.0) -> Status:
        """After `end`: wait for the final heartbeat (`state = "ended"`, the final counters)."""
        deadline = time.monotonic() + timeout_s
        while not (self.status and self.status.ended):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no final status (state = ended) within {timeout_s} s")
            self.pump(int(min(left, 0.1) * 1000))
        return self.status

    def close(self) -> None:
        if self.push is not None:
            self.push.close()
        self.sub.close()
        if self._own_context:
            self.context.term()

    def __enter__(self) -> "Bridge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
