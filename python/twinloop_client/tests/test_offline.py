"""Checks of the client that need no daemon: header layout, decoding, the ack epoch rule.

Plain asserts (no pytest needed): `python tests/test_offline.py` exits non-zero on a failure.
scripts/test.sh runs it before the Rust tests, and so does tests/tests/python_client.rs (for
`cargo test` alone); the daemon-facing checks live there.
"""

import json
import struct
import sys

import numpy as np

from twinloop_client import (Ack, Activity, Bridge, ClockUpdate, Decision, Flip, ProtocolError,
                             Status, Stream, View, decode)
from twinloop_client.protocol import (HEADER_FIELDS, HEADER_FORMAT, HEADER_LEN, Dtype, Header,
                                      encode, json_payload, parse)


def check_header_offsets():
    # Each field's offset is the packed size of the fields before it (an independent layout).
    codes = ["4s", "H", "H", "B", "B", "B", "B", "I", "Q", "q", "4I", "q", "q"]
    assert [n for n, _ in HEADER_FIELDS][:3] == ["magic", "version", "stream"]
    for i, (name, offset) in enumerate(HEADER_FIELDS):
        assert struct.calcsize("<" + "".join(codes[:i])) == offset, name
    assert "<" + "".join(codes) == HEADER_FORMAT and HEADER_LEN == 64


def check_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        ndim = int(rng.integers(0, 5))
        h = Header(stream=Stream.TWO_PHOTON, dtype=Dtype.I16,
                   shape=tuple(int(d) for d in rng.integers(0, 2**32, ndim)),
                   seq=int(rng.integers(0, 2**63)), t_ns=int(rng.integers(-2**63, 2**63 - 1)),
                   aux=int(rng.integers(-2**63, 2**63 - 1)), plane=int(rng.integers(0, 256)),
                   channel=int(rng.integers(0, 256)), flags=int(rng.integers(0, 2**32)),
                   sent_ns=int(rng.integers(0, 2**63)))
        assert Header.decode(h.encode()) == h, h


def check_rejections():
    good = Header(Stream.TWO_PHOTON, Dtype.U16, (2, 3)).encode()
    cases = {
        "header_length": good[:63],
        "bad_magic": b"XXXX" + good[4:],
        "unsupported_version": Header(Stream.TWO_PHOTON, Dtype.U16, (2, 3), version=2).encode(),
        "unknown_stream": Header(9, Dtype.U16, (2, 3)).encode(),
        "unknown_dtype": Header(Stream.TWO_PHOTON, 10, (2, 3)).encode(),
        "ndim": good[:9] + bytes([5]) + good[10:],
        "dtype_not_allowed": Header(Stream.TWO_PHOTON, Dtype.F32, (2, 3)).encode(),
    }
    for label, raw in cases.items():
        try:
            Header.decode(raw)
        except ProtocolError as e:
            assert e.label == label, (label, e)
        else:
            raise AssertionError(f"{label} accepted")
    for label, frames in {
        "frame_count": [b"two_photon", good],
        "topic_mismatch": [b"two_photo", good, bytes(12)],
        "payload_size": [b"two_photon", good, bytes(11)],
    }.items():
        try:
            parse(frames)
        except ProtocolError as e:
            assert e.label == label, (label, e)
        else:
            raise AssertionError(f"{label} accepted")
    assert parse([b"two_photon", good, bytes(12)])[1] == bytes(12)


def check_decoding():
    values = np.array([0.5, -1.25, 3e-8], "<f4")
    a = decode(encode(Stream.ACTIVITY, Dtype.F32, [3], values.tobytes(), seq=7, plane=1))
    assert isinstance(a, Activity) and a.frame_seq == 7 and a.plane == 1
    assert np.array_equal(a.values, values)
    # An ack without payload (daemons before epochs) and one with its hello's epoch.
    old = decode(encode(Stream.ACK, Dtype.U8, [0], b"", seq=4, aux=1))
    new = decode(encode(Stream.ACK, Dtype.U64, [1], struct.pack("<Q", 2**60 + 3), seq=5, aux=1))
    assert isinstance(old, Ack) and (old.index, old.epoch) == (4, None)
    assert isinstance(new, Ack) and (new.index, new.epoch) == (5, 2**60 + 3)
    try:  # eight bytes that are not one u64 are not an epoch
        decode(encode(Stream.ACK, Dtype.U32, [2], bytes(8), seq=5, aux=1))
    except ValueError:
        pass
    else:
        raise AssertionError("an ack with a u32 [2] payload decoded")
    img = np.arange(6, dtype=np.uint8).reshape(2, 3)
    v = decode(encode(Stream.VIEW, Dtype.U8, [2, 3], img.tobytes(), seq=9, aux=-1, flags=1))
    assert isinstance(v, View) and v.onset and v.trial == -1 and np.array_equal(v.image, img)
    f = decode(encode(Stream.FLIP, Dtype.U8, [0], b"", seq=10, aux=2))
    assert isinstance(f, Flip) and not f.onset and (f.display_frame, f.trial) == (10, 2)
    counters = {"rejected": {"sequence": 2}, "garbage_messages": 3, "clock_domains_unticked": 1}
    shape, body = json_payload({"state": "running", "t_s": 0.0, "counters": counters,
                                "recording": True, "clocks_ticking": False,
                                "flow_window": 16, "protocol_version": 1,
                                "imaging": {"height": 4, "width": 4, "planes": 1,
                                            "channels": 1}})
    s = decode(encode(Stream.STATUS, Dtype.JSON, shape, body))
    assert isinstance(s, Status) and s.flow_window == 16 and not s.ended
    assert (s.recording, s.clocks_ticking) == (True, False)
    assert s.rejected == {"sequence": 2} and s.garbage_messages == 3
    mapping = {"dev_ref_ns": 1000, "rig_at_ref_ns": 5000.0, "rate": 1.00003}
    shape, body = json_payload({"domain": "eye_camera", "generation": 2, "dev_ticks": 12,
                                "rig_ticks": 12, "state": "fitted", "mapping": mapping})
    c = decode(encode(Stream.CLOCK, Dtype.JSON, shape, body, channel=2))
    assert isinstance(c, ClockUpdate) and int(c.domain) == 2 and c.fit is None
    # rig = rig_at_ref + rate (dev - dev_ref), by hand
    assert c.mapping.to_rig_ns(1_001_000) == round(5000.0 + 1.00003 * 1_000_000)
    assert abs(c.mapping.drift_ppm - 30.0) < 1e-6
    d = {"trial": 3, "stimulus": 17, "name": "grating", "spec": {}, "policy": "adaptive",
         "after_frame_seq": None, "frames_seen": 0, "after_frame_t_ns": 0, "mode": "warmup",
         "onsets_seen": 0}
    dec = decode(encode(Stream.DECISION, Dtype.JSON, *json_payload(d)))
    assert isinstance(dec, Decision) and dec.score is None and dec.mode == "warmup"
    try:
        decode(encode(Stream.TWO_PHOTON, Dtype.U16, [1], bytes(2)))
    except ValueError:
        pass
    else:
        raise AssertionError("an input stream decoded as an output")


def check_ack_epochs():
    # No daemon: the sockets connect lazily and nothing is sent.
    b = Bridge("tcp://127.0.0.1:9", "tcp://127.0.0.1:9")
    try:
        b.epoch = 42
        ack = lambda index, epoch: Ack(Header(Stream.ACK, Dtype.U64, (1,)), index, epoch)  # noqa
        b._handle(ack(5, 41))
        assert (b.acked, b.stale_acks) == (-1, 1), "an earlier hello's ack is stale"
        b._handle(ack(3, 0))
        assert (b.acked, b.stale_acks) == (-1, 2), "an epoch-less hello's ack is stale too"
        b._handle(ack(2, 42))
        assert b.acked == 2
        b._handle(ack(4, None))
        assert b.acked == 4, "a daemon without epochs: its acks are taken"
        b._handle(ack(1, 42))
        assert b.acked == 4, "credit never goes back"
    finally:
        b.close()


def main():
    for check in (check_header_offsets, check_round_trip, check_rejections, check_decoding,
                  check_ack_epochs):
        check()
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    sys.exit(main())
