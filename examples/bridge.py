#!/usr/bin/env python3
"""A minimal twinloop microscope bridge: wire protocol v1 (docs/protocol.md) in pyzmq + numpy.

Start a daemon with `source.kind = "bridge"`, then:

    python examples/bridge.py --ingest tcp://127.0.0.1:5555 --publish tcp://127.0.0.1:5556

It connects SUB first and waits for a `status` heartbeat, then PUSH: `hello`, two-photon frames
(with sync ticks, treadmill counts and eye-camera frames), honouring the daemon's ack window,
then `end`; it collects the activity the daemon publishes and the final `status`.
`--check-grid B` checks each activity vector against numpy's BxB block means of its frame
(daemon config `imaging.extraction = "grid"`, `grid_block_px = B`); `--send-bad` interleaves
malformed messages and checks that the daemon rejected each under its label. Exit 1 on failure.
"""
import argparse
import collections
import json
import os
import struct
import sys
import time

import numpy as np
import zmq

HEADER = struct.Struct("<4sHHBBBBIQq4Iqq")  # the 64-byte header, little-endian
MAGIC, VERSION = b"TWLP", 1
TWO_PHOTON, EYE_CAMERA, TREADMILL, SYNC, CONTROL = 1, 2, 3, 4, 5  # inputs
ACTIVITY, STATUS, ACK = 16, 21, 22  # outputs used here
TOPIC = {TWO_PHOTON: b"two_photon", EYE_CAMERA: b"eye_camera", TREADMILL: b"treadmill",
         SYNC: b"sync", CONTROL: b"control", ACTIVITY: b"activity"}
U8, U16, I64, F32, JSON = 1, 2, 7, 8, 32  # dtype codes
FRAME_CLOCK = 1  # sync code in aux


def header(stream, dtype, shape, seq, t_ns=0, aux=0, version=VERSION):
    dims = list(shape) + [0] * (4 - len(shape))
    return HEADER.pack(MAGIC, version, stream, dtype, len(shape), 0, 0, 0, seq, t_ns, *dims,
                       aux, time.monotonic_ns())


def fail(msg):
    sys.exit(f"bridge.py: FAILED: {msg}")


class Bridge:
    def __init__(self, args):
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)  # libzmq would drop beyond 1000 queued otherwise
        self.sub.connect(args.publish)
        for topic in (b"activity", b"status", b"ack"):
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 4 * args.window)  # libzmq's own bound, besides acks
        self.push.setsockopt(zmq.LINGER, 5000)
        self.seq = collections.Counter()  # next seq per stream
        self.acked = -1  # last two-photon seq the daemon handed on
        self.epoch = int.from_bytes(os.urandom(8), "little") or 1  # names this hello's acks
        self.activity = {}  # frame seq -> float32 vector
        self.activity_at = {}  # frame seq -> time.monotonic_ns() when it arrived
        self.status = None  # newest status heartbeat (JSON)

    def pump(self, timeout_ms):
        """Handle what the daemon published, waiting up to timeout_ms. False if nothing came."""
        if not self.sub.poll(timeout_ms):
            return False
        while self.sub.poll(0):
            frames = self.sub.recv_multipart()
            if len(frames) != 3 or len(frames[1]) != HEADER.size:
                continue
            h = HEADER.unpack(frames[1])
            stream, seq = h[2], h[8]
            if stream == ACK:
                # An ack names the hello it answers; one for an earlier hello (a daemon still
                # draining a previous connection) says nothing about this one's frames.
                if int.from_bytes(frames[2], "little") == self.epoch:
                    self.acked = seq
            elif stream == STATUS:
                self.status = json.loads(frames[2])
            elif stream == ACTIVITY:
                self.activity[seq] = np.frombuffer(frames[2], "<f4")
                self.activity_at[seq] = time.monotonic_ns()
        return True

    def send(self, stream, dtype, shape, payload, t_ns=0, aux=0):
        seq = self.seq[stream]
        self.seq[stream] += 1
        self.push.send_multipart([TOPIC[stream], header(stream, dtype, shape, seq, t_ns, aux),
                                  payload], copy=False)

    def control(self, **event):
        body = json.dumps(event).encode()
        self.send(CONTROL, JSON, [len(body)], body)


def bad_messages(last_seq, shape):
    """(label the daemon counts it under, frames). None of them consumes a sequence number."""
    h, w = shape
    good, nxt = bytes(2 * h * w), last_seq + 1
    tp = TOPIC[TWO_PHOTON]
    return [
        ("payload_size", [tp, header(TWO_PHOTON, U16, shape, nxt), good[:-2]]),
        ("unsupported_version", [tp, header(TWO_PHOTON, U16, shape, nxt, version=2), good]),
        ("bad_magic", [tp, b"\xde\xad" * 32, good]),  # garbage 64-byte header
        ("header_length", [tp, b"not a header", good]),
        ("sequence", [tp, header(TWO_PHOTON, U16, shape, last_seq), good]),  # repeated seq
        ("unknown_stream", [tp, header(9, U16, shape, nxt), good]),
        ("not_an_input", [TOPIC[ACTIVITY], header(ACTIVITY, F32, [1], 0), bytes(4)]),
        ("frame_count", [tp, header(TWO_PHOTON, U16, shape, nxt)]),  # 2-frame message
        ("topic_mismatch", [b"eye_camera", header(TWO_PHOTON, U16, shape, nxt), good]),
        ("shape", [tp, header(TWO_PHOTON, U16, [h // 2, w], nxt), good[: h * w]]),
        ("dtype_not_allowed", [tp, header(TWO_PHOTON, F32, shape, nxt), bytes(4 * h * w)]),
    ]


def block_means(frame, b):
    h, w = (frame.shape[0] // b) * b, (frame.shape[1] // b) * b
    blocks = frame[:h, :w].reshape(h // b, b, w // b, b).astype(np.float64)
    return blocks.mean(axis=(1, 3)).astype(np.float32).ravel()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ingest", required=True, help="the daemon's PULL endpoint")
    p.add_argument("--publish", required=True, help="the daemon's PUB endpoint")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", default="128x128", help="two-photon frame HEIGHTxWIDTH")
    p.add_argument("--eye", default="120x160", help="eye-camera frame HEIGHTxWIDTH")
    p.add_argument("--rate", type=float, default=0, help="frames/s; 0 = as fast as acks allow")
    p.add_argument("--window", type=int, default=32, help="the daemon's source.flow_window")
    p.add_argument("--check-grid", type=int, metavar="BLOCK")
    p.add_argument("--send-bad", action="store_true")
    args = p.parse_args()
    shape = [int(v) for v in args.size.split("x")]
    eye_shape = [int(v) for v in args.eye.split("x")]
    b = Bridge(args)

    # 1. SUB first: the first heartbeat proves the subscription is live (no output is missed).
    deadline = time.monotonic() + 10
    while b.status is None:
        if time.monotonic() > deadline:
            fail(f"no status heartbeat from {args.publish} in 10 s: is the daemon running?")
        b.pump(100)
    # 2. Then PUSH: hello, data, end.
    b.push.connect(args.ingest)
    b.control(event="hello", epoch=b.epoch, source="examples/bridge.py")
    rng = np.random.default_rng(1)
    expected, sent_at, expected_rejects = {}, {}, collections.Counter()
    n_bad = len(bad_messages(0, shape))
    bad_after = {(i + 1) * args.frames // (n_bad + 1): i for i in range(n_bad)}
    period_ns, start = 33_333_333, time.monotonic()
    for k in range(args.frames):
        while k - (b.acked + 1) >= args.window:  # at most `window` frames unacknowledged
            if not b.pump(5000):
                fail(f"no ack for 5 s with {k - b.acked - 1} frames unacknowledged; daemon "
                     f"rejected so far: {b.status['counters'].get('rejected')}")
        b.pump(0)
        if args.rate > 0:
            time.sleep(max(0.0, start + k / args.rate - time.monotonic()))
        frame = rng.integers(0, 4096, size=shape, dtype=np.uint16)
        if args.check_grid:
            expected[k] = block_means(frame, args.check_grid)
        t_ns = k * period_ns
        sent_at[k] = time.monotonic_ns()
        b.send(TWO_PHOTON, U16, shape, frame.astype("<u2").tobytes(), t_ns, aux=k)
        b.send(SYNC, U8, [0], b"", t_ns, aux=FRAME_CLOCK)
        b.send(TREADMILL, I64, [1], struct.pack("<q", 10 * k), t_ns)
        if k % 2 == 0:
            eye = np.full(eye_shape, k % 256, dtype=np.uint8)
            b.send(EYE_CAMERA, U8, eye_shape, eye.tobytes(), t_ns, aux=k // 2)
        if args.send_bad and k in bad_after:
            label, frames = bad_messages(k, shape)[bad_after[k]]
            b.push.send_multipart(frames)
            expected_rejects[label] += 1
    b.control(event="end", frames=args.frames)

    # 3. Collect: the daemon's last heartbeat says `ended` once everything is drained.
    deadline = time.monotonic() + 20
    while b.status.get("state") != "ended":
        if time.monotonic() > deadline:
            fail("no final status (state = ended) within 20 s of end")
        b.pump(100)
    c = b.status["counters"]
    rtt_ms = np.array([b.activity_at[k] - sent_at[k] for k in b.activity_at if k in sent_at]) / 1e6
    p50, p99 = (round(float(v), 3) for v in np.percentile(rtt_ms, [50, 99])) if len(rtt_ms) \
        else (None, None)
    print(json.dumps({"frames_sent": args.frames, "activity_received": len(b.activity),
                      "send_to_activity_ms": {"p50": p50, "p99": p99},
                      "rejected_expected": expected_rejects, "counters": c}))
    problems = []
    if c["frames_in"] != args.frames or c["gaps"] != 0:
        problems.append(f"daemon took {c['frames_in']} of {args.frames} frames, {c['gaps']} gaps")
    if c.get("rejected", {}) != dict(expected_rejects):
        problems.append(f"rejected {c.get('rejected')} but sent {dict(expected_rejects)}")
    if args.check_grid:
        missing = sorted(set(expected) - set(b.activity))
        if missing:
            problems.append(f"no activity for {len(missing)} frames (first: seq {missing[0]}); "
                            f"stage_skips {c['stage_skips']}, bus_drops {c['bus_drops']}")
        for k, got in sorted(b.activity.items()):
            want = expected.get(k)
            if want is None or got.shape != want.shape or \
                    not np.allclose(got, want, rtol=1e-3, atol=1e-3):
                problems.append(f"activity of frame {k} differs from numpy's block means: "
                                f"got {got[:4]}..., want {None if want is None else want[:4]}...")
                break
    if problems:
        fail("; ".join(problems))
    print(f"bridge.py: OK: {args.frames} frames, {len(b.activity)} activity vectors"
          f"{' matching numpy' if args.check_grid else ''}, rejected {dict(expected_rejects)}")


if __name__ == "__main__":
    main()
