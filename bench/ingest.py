#!/usr/bin/env python3
"""Ingest benchmark peers (wire protocol v1, docs/protocol.md), driven by
`cargo run --release --example bench_ingest -p twinloop-rig` (see bench/INGEST.md).

    ingest.py send    --ingest EP --publish EP [--frames N --size HxW --window W --rate R]
        A pyzmq sender: SUB first, wait for a status heartbeat, PUSH hello, N two-photon frames
        with sent_ns = time.monotonic_ns(), at most W unacknowledged (paced with --rate R), end. Prints one JSON line:
        frames, elapsed (first send to the ack of the last frame), frames/s, MB/s.
    ingest.py receive [--size HxW]
        The baseline: a pyzmq PULL + PUB "daemon" doing the least a receiver must (parse and
        check the header, copy the pixels into a preallocated buffer, ack, heartbeat). Prints
        its endpoints as a first JSON line, then one JSON line with latency send->copied.
"""
import argparse
import json
import struct
import sys
import time

import numpy as np
import zmq

HEADER = struct.Struct("<4sHHBBBBIQq4Iqq")
MAGIC, VERSION = b"TWLP", 1
TWO_PHOTON, CONTROL, STATUS, ACK = 1, 5, 21, 22
U8, U16, JSON = 1, 2, 32


def header(stream, dtype, shape, seq, t_ns=0, aux=0):
    dims = list(shape) + [0] * (4 - len(shape))
    return HEADER.pack(MAGIC, VERSION, stream, dtype, len(shape), 0, 0, 0, seq, t_ns, *dims,
                       aux, time.monotonic_ns())


def send(args):
    shape = [int(v) for v in args.size.split("x")]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(args.publish)
    for topic in (b"status", b"ack"):
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    acked, seen_status = -1, False

    def pump(timeout_ms):
        nonlocal acked, seen_status
        if not sub.poll(timeout_ms):
            return False
        while sub.poll(0):
            frames = sub.recv_multipart(copy=True)
            h = HEADER.unpack(frames[1])
            if h[2] == ACK:
                acked = h[8]
            elif h[2] == STATUS:
                seen_status = True
        return True

    deadline = time.monotonic() + 10
    while not seen_status:
        if time.monotonic() > deadline:
            sys.exit(f"ingest.py send: no status heartbeat from {args.publish} in 10 s")
        pump(100)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 2 * args.window)
    push.setsockopt(zmq.LINGER, 10000)
    push.connect(args.ingest)
    hello = json.dumps({"event": "hello", "source": "bench/ingest.py"}).encode()
    push.send_multipart([b"control", header(CONTROL, JSON, [len(hello)], 0), hello])
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 4096, size=shape, dtype=np.uint16).astype("<u2").tobytes()
              for _ in range(8)]
    start = time.monotonic()
    for k in range(args.frames):
        if args.rate > 0:
            time.sleep(max(0.0, start + k / args.rate - time.monotonic()))
        while k - (acked + 1) >= args.window:
            if not pump(5000):
                sys.exit(f"ingest.py send: no ack for 5 s at frame {k} (acked {acked})")
        pump(0)
        push.send_multipart([b"two_photon", header(TWO_PHOTON, U16, shape, k, k * 33_333_333, k),
                             frames[k % len(frames)]], copy=False)
    while acked < args.frames - 1:
        if not pump(5000):
            sys.exit(f"ingest.py send: no ack for the last frame in 5 s (acked {acked})")
    elapsed = time.monotonic() - start
    end = json.dumps({"event": "end", "frames": args.frames}).encode()
    push.send_multipart([b"control", header(CONTROL, JSON, [len(end)], 1), end])
    push.close()  # lingers until `end` is out
    sub.close()
    ctx.term()
    mb = args.frames * len(frames[0]) / 1e6
    print(json.dumps({"sender": "pyzmq", "frames": args.frames, "elapsed_s": elapsed,
                      "fps": args.frames / elapsed, "mb_s": mb / elapsed}), flush=True)


def receive(args):
    shape = [int(v) for v in args.size.split("x")]
    ctx = zmq.Context()
    pull, pub = ctx.socket(zmq.PULL), ctx.socket(zmq.PUB)
    pull.setsockopt(zmq.RCVHWM, 2 * args.window)
    pub.setsockopt(zmq.SNDHWM, 0)
    ports = [s.bind_to_random_port("tcp://127.0.0.1") for s in (pull, pub)]
    print(json.dumps({"ingest": f"tcp://127.0.0.1:{ports[0]}",
                      "publish": f"tcp://127.0.0.1:{ports[1]}"}), flush=True)
    pixels = np.zeros(shape, dtype=np.uint16)
    want = 2 * pixels.size
    lat_ns, status_seq, next_beat, frames_in, rejected = [], 0, 0.0, 0, 0
    while True:
        now = time.monotonic()
        if now >= next_beat:  # heartbeat every 100 ms (the first proves the SUB is live)
            body = json.dumps({"state": "running", "frames_in": frames_in}).encode()
            pub.send_multipart([b"status", header(STATUS, JSON, [len(body)], status_seq), body])
            status_seq, next_beat = status_seq + 1, now + 0.1
        if not pull.poll(20):
            continue
        topic, head, payload = pull.recv_multipart(copy=False)
        h = HEADER.unpack(head.bytes)
        if h[0] != MAGIC or h[1] != VERSION:
            rejected += 1
            continue
        if h[2] == CONTROL:
            if json.loads(payload.bytes).get("event") == "end":
                break
            continue
        if h[2] != TWO_PHOTON or h[3] != U16 or len(payload) != want:
            rejected += 1
            continue
        np.copyto(pixels, np.frombuffer(payload.buffer, dtype="<u2").reshape(shape))
        lat_ns.append(time.monotonic_ns() - h[15])
        frames_in += 1
        pub.send_multipart([b"ack", header(ACK, U8, [0], h[8], h[9], TWO_PHOTON), b""])
    lat_us = np.array(lat_ns) / 1e3
    p50, p99 = np.percentile(lat_us, [50, 99]) if len(lat_us) else (0.0, 0.0)
    print(json.dumps({"receiver": "pyzmq", "frames_in": frames_in, "rejected": rejected,
                      "p50_us": float(p50), "p99_us": float(p99)}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["send", "receive"])
    p.add_argument("--ingest")
    p.add_argument("--publish")
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--size", default="512x512", help="HEIGHTxWIDTH")
    p.add_argument("--window", type=int, default=32, help="frames unacknowledged at most")
    p.add_argument("--rate", type=float, default=0, help="frames/s; 0 = as fast as acks allow")
    args = p.parse_args()
    if args.mode == "send":
        if not (args.ingest and args.publish):
            p.error("send needs --ingest and --publish")
        send(args)
    else:
        receive(args)


if __name__ == "__main__":
    main()
