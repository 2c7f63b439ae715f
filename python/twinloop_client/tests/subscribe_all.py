"""Subscribe to everything a session publishes and write what was decoded, for the Rust test
(tests/tests/python_client.rs) to compare with the session's own log.

    python subscribe_all.py PUBLISH_ENDPOINT REPORT.json

Prints `ready` once the subscription is live (its first heartbeat), then collects until the
final heartbeat (`state = "ended"`) and writes the report. Exits 1 when something published
could not be decoded or no final heartbeat came.
"""

import collections
import json
import sys

import numpy as np

from twinloop_client import (Ack, Activity, Behaviour, Cells, ClockUpdate, Decision, Flip,
                             Prediction, Registration, StimulusOnset, Status, Stream, Subscriber,
                             View)


def main(publish, report_path):
    counts = collections.Counter()
    report = {"activity": {}, "prediction": {}, "flips": [], "views": [], "decisions": [],
              "stimuli": [], "clock": [], "cells": [], "registration": [], "behaviour": [],
              "acks": [], "final_status": None}
    with Subscriber(publish) as sub:  # every topic
        sub.wait_for_status(timeout_s=30)
        print("ready", flush=True)
        for msg in sub.messages(idle_timeout_s=30):
            counts[type(msg).__name__] += 1
            h = msg.header
            # Prediction is an Activity subclass: test it first.
            if isinstance(msg, Prediction):
                report["prediction"][str(msg.frame_seq)] = len(msg.values)
            elif isinstance(msg, Activity):
                assert msg.values.dtype == np.float32 and msg.values.ndim == 1
                # float32 -> float (exact) -> JSON (repr, exact) -> f64 -> f32 in Rust: exact.
                report["activity"][str(msg.frame_seq)] = [float(v) for v in msg.values]
            elif isinstance(msg, View):
                report["views"].append([msg.display_frame, msg.trial, msg.onset,
                                        list(msg.image.shape), int(msg.image.sum())])
            elif isinstance(msg, Flip):
                report["flips"].append([msg.display_frame, msg.t_ns, msg.trial, msg.onset])
            elif isinstance(msg, Decision):
                report["decisions"].append([msg.trial, msg.stimulus, msg.mode, msg.name])
            elif isinstance(msg, StimulusOnset):
                report["stimuli"].append([msg.trial, msg.stimulus, msg.onset_t_ns,
                                          msg.display_frame])
            elif isinstance(msg, ClockUpdate):
                report["clock"].append([msg.domain.name.lower(), msg.generation, msg.state,
                                        msg.mapping.rate, h.channel])
            elif isinstance(msg, Cells):
                report["cells"].append({"plane": msg.plane, "rows": msg.rows.tolist(),
                                        "offsets_s": msg.offsets_s.tolist()})
            elif isinstance(msg, Registration):
                report["registration"].append([msg.frame_seq, msg.plane, msg.dy_px, msg.dx_px])
            elif isinstance(msg, Behaviour):
                report["behaviour"].append([msg.frame_seq, msg.t_ns, msg.pupil_fill,
                                            msg.treadmill_fill])
            elif isinstance(msg, Ack):
                report["acks"].append([msg.index, msg.epoch])
            elif isinstance(msg, Status) and msg.ended:
                report["final_status"] = msg.raw
        report["counts"] = counts
        report["undecodable"] = sub.undecodable
    with open(report_path, "w") as f:
        json.dump(report, f)
    if report["final_status"] is None:
        sys.exit("subscribe_all.py: no final heartbeat (state = ended)")
    if report["undecodable"]:
        sys.exit(f"subscribe_all.py: {report['undecodable']} messages could not be decoded")
    missing = [s.name for s in Stream
               if not s.is_input and s not in SESSION_SPECIFIC and not counts.get(_class(s))]
    print(json.dumps({"counts": counts, "never_seen": missing}), flush=True)


# Streams only some protocols publish: the inception notes come from a session with an
# `[inception]` table alone (rig/tests/inception.rs checks every note arrives on it, in order).
SESSION_SPECIFIC = {Stream.INCEPTION}


def _class(s):
    """The class name `decode` gives a stream's messages."""
    return {Stream.STIMULUS: "StimulusOnset", Stream.CLOCK: "ClockUpdate",
            Stream.INCEPTION: "InceptionNote"}.get(s, s.name.title().replace("_", ""))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
