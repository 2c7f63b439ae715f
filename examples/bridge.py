#!/usr/bin/env python3
"""A microscope bridge on the twinloop client (python/twinloop_client), with the tests' checks.

Start a daemon with `source.kind = "bridge"` (configs/bridge.toml), then:

    pip install python/twinloop_client
    python examples/bridge.py --ingest tcp://127.0.0.1:5555 --publish tcp://127.0.0.1:5556

It sends `hello` (named by a random epoch: the client ignores acks of an earlier hello),
two-photon frames with a frame-clock sync tick, treadmill counts and (every
other frame) an eye-camera frame, within the daemon's ack window, then `end`, and collects the
activity the daemon publishes and the final `status`. `--check-grid B` checks each activity
vector against numpy's BxB block means of its frame (daemon config `imaging.extraction =
"grid"`, `grid_block_px = B`); `--send-bad` interleaves malformed messages and checks that the
daemon rejected each under its label. Prints a JSON report, then OK; exits 1 on failure.
"""
import argparse
import collections
import json
import sys
import time

import numpy as np

from twinloop_client import Activity, Bridge, Dtype, Header, Stream, SyncCode


def fail(msg):
    sys.exit(f"bridge.py: FAILED: {msg}")


def bad_messages(last_seq, shape):
    """(label the daemon counts it under, frames). None of them consumes a sequence number.
    `garbage` is not a rejection: it is not twinloop traffic, counted in `garbage_messages`."""
    h, w = shape
    good, nxt = bytes(2 * h * w), last_seq + 1
    tp = Stream.TWO_PHOTON.topic

    def frame(seq=nxt, dims=shape, **kw):
        return Header(Stream.TWO_PHOTON, kw.pop("dtype", Dtype.U16), tuple(dims), seq=seq,
                      **kw).encode()

    return [
        ("payload_size", [tp, frame(), good[:-2]]),
        ("unsupported_version", [tp, frame(version=2), good]),
        ("bad_magic", [tp, b"\xde\xad" * 32, good]),  # garbage 64-byte header
        ("header_length", [tp, b"not a header", good]),
        ("sequence", [tp, frame(seq=last_seq), good]),  # repeated seq
        ("unknown_stream", [tp, Header(9, Dtype.U16, tuple(shape), seq=nxt).encode(), good]),
        ("not_an_input", [Stream.ACTIVITY.topic, Header(Stream.ACTIVITY, Dtype.F32, (1,)).encode(),
                          bytes(4)]),
        ("frame_count", [tp, frame()]),  # 2-frame message
        ("topic_mismatch", [Stream.EYE_CAMERA.topic, frame(), good]),
        ("shape", [tp, frame(dims=[h // 2, w]), good[: h * w]]),
        ("dtype_not_allowed", [tp, frame(dtype=Dtype.F32), bytes(4 * h * w)]),
        ("garbage", [b"GET / HTTP/1.1\r\n", b"Host: rig\r\n", b"\r\n"]),  # a stray client
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
    p.add_argument("--window", type=int, help="ack window; default: the daemon's flow_window")
    p.add_argument("--check-grid", type=int, metavar="BLOCK")
    p.add_argument("--send-bad", action="store_true")
    args = p.parse_args()
    shape = [int(v) for v in args.size.split("x")]
    eye_shape = [int(v) for v in args.eye.split("x")]

    activity, activity_at = {}, {}

    def on_message(msg):
        if isinstance(msg, Activity):
            activity[msg.frame_seq] = msg.values
            activity_at[msg.frame_seq] = time.monotonic_ns()

    b = Bridge(args.ingest, args.publish, subscribe=[Stream.ACTIVITY], on_message=on_message,
               window=args.window)
    try:
        b.connect(timeout_s=10)  # SUB first, a heartbeat, then PUSH
    except TimeoutError as e:
        fail(e)
    b.hello(source="examples/bridge.py")
    rng = np.random.default_rng(1)
    expected, sent_at, expected_rejects = {}, {}, collections.Counter()
    expected_garbage = 0
    n_bad = len(bad_messages(0, shape))
    bad_after = {(i + 1) * args.frames // (n_bad + 1): i for i in range(n_bad)}
    period_ns, start = 33_333_333, time.monotonic()
    for k in range(args.frames):
        if args.rate > 0:
            time.sleep(max(0.0, start + k / args.rate - time.monotonic()))
        frame = rng.integers(0, 4096, size=shape, dtype=np.uint16)
        if args.check_grid:
            expected[k] = block_means(frame, args.check_grid)
        t_ns = k * period_ns
        b.wait_for_credit(timeout_s=5)  # before taking the send time
        sent_at[k] = time.monotonic_ns()
        b.two_photon(frame, t_ns, frame_number=k)
        b.sync(SyncCode.FRAME_CLOCK, t_ns)
        b.treadmill(10 * k, t_ns)
        if k % 2 == 0:
            b.eye_camera(np.full(eye_shape, k % 256, dtype=np.uint8), t_ns, frame_number=k // 2)
        if args.send_bad and k in bad_after:
            last_seq = b.next_seq(Stream.TWO_PHOTON) - 1
            label, frames = bad_messages(last_seq, shape)[bad_after[k]]
            b.send_raw(frames)
            if label == "garbage":
                expected_garbage += 1
            else:
                expected_rejects[label] += 1
    b.end(frames=args.frames)
    try:
        final = b.wait_ended(timeout_s=20)
    except TimeoutError as e:
        fail(e)
    finally:
        b.close()

    c = final.counters
    rtt_ms = np.array([activity_at[k] - sent_at[k] for k in activity_at if k in sent_at]) / 1e6
    p50, p99 = (round(float(v), 3) for v in np.percentile(rtt_ms, [50, 99])) if len(rtt_ms) \
        else (None, None)
    print(json.dumps({"frames_sent": args.frames, "activity_received": len(activity),
                      "send_to_activity_ms": {"p50": p50, "p99": p99},
                      "stale_acks": b.stale_acks, "epoch": b.epoch,
                      "rejected_expected": expected_rejects,
                      "garbage_expected": expected_garbage, "counters": c}))
    problems = []
    if c["frames_in"] != args.frames or c["gaps"] != 0:
        problems.append(f"daemon took {c['frames_in']} of {args.frames} frames, {c['gaps']} gaps")
    if final.rejected != dict(expected_rejects):
        problems.append(f"rejected {final.rejected} but sent {dict(expected_rejects)}")
    if final.garbage_messages != expected_garbage:
        problems.append(f"{final.garbage_messages} garbage messages counted, "
                        f"{expected_garbage} sent")
    if final.clocks_ticking is False:
        problems.append("the daemon expects clock ticks this bridge does not send: its "
                        "[clocks] put a stream on a device clock")
    if args.check_grid:
        missing = sorted(set(expected) - set(activity))
        if missing:
            problems.append(f"no activity for {len(missing)} frames (first: seq {missing[0]}); "
                            f"stage_skips {c['stage_skips']}, bus_drops {c['bus_drops']}")
        for k, got in sorted(activity.items()):
            want = expected.get(k)
            if want is None or got.shape != want.shape or \
                    not np.allclose(got, want, rtol=1e-3, atol=1e-3):
                problems.append(f"activity of frame {k} differs from numpy's block means: "
                                f"got {got[:4]}..., want {None if want is None else want[:4]}...")
                break
    if problems:
        fail("; ".join(problems))
    print(f"bridge.py: OK: {args.frames} frames, {len(activity)} activity vectors"
          f"{' matching numpy' if args.check_grid else ''}, rejected {dict(expected_rejects)}")


if __name__ == "__main__":
    main()
