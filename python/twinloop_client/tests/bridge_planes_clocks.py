"""A two-plane, signed (i16) microscope on its own clock, through the client, for the Rust test
(tests/tests/python_client.rs; daemon: `planes = 2`, grid extraction, `[clocks] two_photon =
"device"`).

    python bridge_planes_clocks.py INGEST PUBLISH FRAMES BLOCK DRIFT_PPM

Frame k is plane k % 2 (each plane numbered on its own by the client), stamped on the
microscope's clock, which runs DRIFT_PPM fast from an offset of 2.5 s. Every 10th frame a shared
sync pulse is sent as the rig saw it, then as the microscope did. Checks, against numpy and the
simulated clocks: each activity vector is the block means of its signed frame, and its time is
the frame's true rig time (within the first-tick mapping's error before the fit, 1 us after);
frames the busy imaging stage skipped (counted as `stage_skips`) have none.
Prints a JSON report; exits 1 on failure.
"""

import json
import sys

import numpy as np

from twinloop_client import Activity, Bridge, ClockDomain, ClockUpdate, Stream

PERIOD_NS = 33_333_333
OFFSET_NS = 2_500_000_000


def main(ingest, publish, frames, block, drift_ppm):
    activity, updates = {}, []

    def on_message(msg):
        if isinstance(msg, Activity):
            activity[(msg.plane, msg.frame_seq)] = msg
        elif isinstance(msg, ClockUpdate):
            updates.append(msg)

    def device_ns(rig_ns):
        return OFFSET_NS + round(rig_ns * (1 + drift_ppm * 1e-6))

    rng = np.random.default_rng(3)
    sent = {}
    with Bridge(ingest, publish, subscribe=[Stream.ACTIVITY, Stream.CLOCK],
                on_message=on_message) as b:
        status = b.connect()
        shape = (status.imaging["height"], status.imaging["width"])
        b.hello(source="bridge_planes_clocks.py")
        for k in range(frames):
            rig_ns = k * PERIOD_NS
            if k % 10 == 0:  # the pulse: the rig's tick first, then the device's
                b.clock_tick(ClockDomain.RIG, rig_ns)
                b.clock_tick(ClockDomain.TWO_PHOTON, device_ns(rig_ns))
            frame = rng.integers(-2000, 2000, size=shape, dtype=np.int16)
            seq = b.two_photon(frame, device_ns(rig_ns), plane=k % 2, frame_number=k)
            sent[(k % 2, seq)] = (frame, rig_ns)
        b.end(frames=frames)
        final = b.wait_ended()
        # Activity published just before the last heartbeat may still be queued.
        while b.pump(200):
            pass

    problems, worst_early, worst_late = [], 0, 0
    for key, (frame, rig_ns) in sent.items():
        a = activity.get(key)
        if a is None:
            continue  # skipped by a busy imaging stage: counted below
        h, w = (shape[0] // block) * block, (shape[1] // block) * block
        want = frame[:h, :w].astype(np.float64).reshape(h // block, block, w // block, block)
        want = want.mean(axis=(1, 3)).astype(np.float32).ravel()
        if not np.allclose(a.values, want, rtol=1e-4, atol=1e-3):
            problems.append(f"plane {key[0]} seq {key[1]}: {a.values[:3]} != {want[:3]}")
        err = abs(a.t_ns - rig_ns)
        if rig_ns < 15 * 10 * PERIOD_NS:
            worst_early = max(worst_early, err)
        else:
            worst_late = max(worst_late, err)
    # Before the fit the mapping is the first tick's offset at rate 1: off by the drift over the
    # time since that tick (<= 15 pulses, 5 s: 150 us at 30 ppm); fitted on exact ticks, ~ns.
    if worst_early > drift_ppm * 1e-6 * 15 * 10 * PERIOD_NS + 1000:
        problems.append(f"activity times off by {worst_early} ns before the fit")
    if worst_late > 1000:
        problems.append(f"activity times off by {worst_late} ns with the fit")
    fitted = [u for u in updates if u.fit is not None and u.domain == ClockDomain.TWO_PHOTON]
    print(json.dumps({"activity_received": len(activity), "clock_updates": len(updates),
                      "fitted_updates": len(fitted),
                      "rate": fitted[-1].mapping.rate if fitted else None,
                      "worst_error_ns": {"before_fit": worst_early, "fitted": worst_late},
                      "frames_in": final.counters["frames_in"],
                      "stage_skips": final.counters["stage_skips"]}))
    if not fitted:
        problems.append("no fitted clock update was published")
    if final.clocks_ticking is not True:
        problems.append(f"final heartbeat: clocks_ticking = {final.clocks_ticking} with ticks")
    # Sent as fast as the window allows, a frame may be recorded but skipped by the stage.
    skips = final.counters["stage_skips"]
    if len(activity) + skips != frames:
        problems.append(f"{len(activity)} activity vectors + {skips} stage skips != {frames}")
    if problems:
        sys.exit("bridge_planes_clocks.py: FAILED: " + "; ".join(problems[:5]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
