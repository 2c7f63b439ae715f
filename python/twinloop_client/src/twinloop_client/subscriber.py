"""`Subscriber`: everything the daemon publishes, decoded into typed objects.

    with Subscriber("tcp://127.0.0.1:5556", [Stream.ACTIVITY, Stream.DECISION]) as sub:
        sub.wait_for_status()
        for msg in sub.messages(idle_timeout_s=5):
            ...
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Iterator, Optional, Union

import zmq

from .messages import Message, Status, decode
from .protocol import ProtocolError, Stream

log = logging.getLogger(__name__)

Topic = Union[Stream, str, bytes]


def _topic(t: Topic) -> bytes:
    if isinstance(t, Stream):
        return t.topic
    return t.encode() if isinstance(t, str) else bytes(t)


class Subscriber:
    """A SUB socket on the daemon's publish endpoint (`source.publish`).

    `topics` are stream names or :class:`Stream` members; empty means every stream. The
    receive high-water mark is 0 (unbounded) so libzmq does not drop published messages beyond
    its default 1,000 while the caller is busy (docs/protocol.md §6).
    """

    def __init__(self, publish: str, topics: Iterable[Topic] = (), *,
                 context: Optional[zmq.Context[Any]] = None) -> None:
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(publish)
        self.endpoint = publish
        wanted = [_topic(t) for t in topics] or [b""]
        if b"" not in wanted and Stream.STATUS.topic not in wanted:
            wanted.append(Stream.STATUS.topic)  # wait_for_status needs the heartbeats
        for t in wanted:
            self.socket.setsockopt(zmq.SUBSCRIBE, t)
        #: The newest heartbeat seen, None before the first.
        self.status: Optional[Status] = None
        #: Messages that could not be decoded (logged at warning level, then skipped).
        self.undecodable = 0

    def recv(self, timeout_ms: Optional[int] = None) -> Optional[Message]:
        """The next decodable message, or None when nothing arrives within `timeout_ms`
        (None: wait forever). Undecodable messages are counted and skipped."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self.socket.poll(left):
                return None
            frames = self.socket.recv_multipart()
            try:
                msg = decode(frames)
            except (ProtocolError, ValueError, KeyError) as e:
                self.undecodable += 1
                log.warning("undecodable message on %r: %s", frames[0][:32], e)
                continue
            if isinstance(msg, Status):
                self.status = msg
            return msg

    def messages(self, idle_timeout_s: float = 5.0, until_ended: bool = True
                 ) -> Iterator[Message]:
        """Messages as they arrive; stops after `idle_timeout_s` without any, or (with
        `until_ended`) after the final heartbeat (`state = "ended"`), which it yields."""
        while True:
            msg = self.recv(int(idle_timeout_s * 1000))
            if msg is None:
                return
            yield msg
            if until_ended and isinstance(msg, Status) and msg.ended:
                return

    def wait_for_status(self, timeout_s: float = 10.0) -> Status:
        """Block until a heartbeat arrives: then the subscription is live and nothing published
        afterwards is missed (the slow-joiner problem, docs/protocol.md §2). Other messages
        received meanwhile are dropped."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            msg = self.recv(int(left * 1000)) if left > 0 else None
            if isinstance(msg, Status):
                return msg
            if msg is None:
                raise TimeoutError(f"no status heartbeat from {self.endpoint} in {timeout_s} s: "
                                   "is the daemon running, and is this its publish endpoint?")

    def close(self) -> None:
        self.socket.close()
        if self._own_context:
            self.context.term()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
