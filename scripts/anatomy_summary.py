"""Summarises `twinloop analyze twin-chain` results (issue #21 item 5) for BENCHMARKS.md.

usage: anatomy_summary.py results.json [results.json ...]

Per embeddings arm (true features, transfer twin, ...), over seeds:
- null rule: share of synaptic-scale slopes (both measures, every projection type) with
  p < 0.05, and of seeds with any BH q < 0.05, each with its exact (Clopper-Pearson) 95% CI;
- feature rule: V1->V1 beta_f / true beta_f (mean, SD) and power (V1->V1 feature q < 0.05) per
  number of presynaptic cells, with CIs; RF slopes called significant (q < 0.05) under it;
- RF rule: V1->V1 beta_r / true beta_r and detection (q < 0.05, right sign); feature slopes
  called significant under it (confusion);
- decoding: balanced accuracy of type and area from features, position and both, shuffled
  labels and chance;
- attenuation: each twin arm's beta_f / beta_f over the true features' on the same seed.

Seeds' slopes within one seed are not independent (they share the cells), so the per-slope
CI is optimistic; the per-seed one is not.
"""

import json
import statistics as st
import sys
from collections import defaultdict

from scipy.stats import binomtest


def ci(k, n):
    if n == 0:
        return "n/a"
    lo, hi = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return f"{k}/{n} = {k / n:.1%} (95% CI {lo:.1%}-{hi:.1%})"


def msd(v):
    v = [x for x in v if x is not None]
    if not v:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.3f} (n=1)"
    return f"{st.mean(v):.3f} ± {st.stdev(v):.3f} (n={len(v)})"


def key(o):
    return o["arm"] if o["arm"] == "true-features" else f'{o["arm"]} {o["minutes"]:g} min'


def main():
    outcomes = []
    for path in sys.argv[1:]:
        for seed in json.load(open(path)):
            for o in seed["outcomes"]:
                o["seed"] = seed["seed"]
                outcomes.append(o)
    arms = defaultdict(list)
    for o in outcomes:
        arms[key(o)].append(o)
    truth_ratio = {
        (o["seed"], o["presynaptic"]): o["beta_f_v1"] / o["beta_feature"]
        for o in outcomes
        if o["arm"] == "true-features" and o["rule"] == "feature" and o["beta_f_v1"] is not None
    }
    for arm, rows in arms.items():
        seeds = sorted({o["seed"] for o in rows})
        print(f"## {arm}: seeds {seeds[0]}-{seeds[-1]} ({len(seeds)})")
        for n_pre in sorted({o["presynaptic"] for o in rows}):
            by = defaultdict(list)
            for o in rows:
                if o["presynaptic"] == n_pre:
                    by[o["rule"]].append(o)
            print(f"### {n_pre} presynaptic cells")
            if by["null"]:
                slopes = [s for o in by["null"] for s in o["synaptic"]]
                k = sum(s["p_value"] < 0.05 for s in slopes)
                fam = sum(any(s["q_value"] < 0.05 for s in o["synaptic"]) for o in by["null"])
                v1 = sum(
                    o["beta_f_v1_q"] is not None and o["beta_f_v1_q"] < 0.05 for o in by["null"]
                )
                print(f"- null: slopes with p < 0.05: {ci(k, len(slopes))}; seeds with any "
                      f"q < 0.05: {ci(fam, len(by['null']))}; V1->V1 feature q < 0.05: "
                      f"{ci(v1, len(by['null']))}; beta_f V1->V1 {msd([o['beta_f_v1'] for o in by['null']])}")
            if by["feature"]:
                f = by["feature"]
                ratio = [o["beta_f_v1"] / o["beta_feature"] for o in f if o["beta_f_v1"] is not None]
                power = sum(o["beta_f_v1_q"] is not None and o["beta_f_v1_q"] < 0.05 and o["beta_f_v1"] > 0 for o in f)
                rf_fp = [s for o in f for s in o["synaptic"] if s["measure"] == "RfDistance"]
                print(f"- feature: beta_f/true V1->V1 {msd(ratio)}; mean over types "
                      f"{msd([o['beta_f_ratio_mean'] for o in f])}; power (V1->V1 q < 0.05): "
                      f"{ci(power, len(f))}; RF slopes q < 0.05: "
                      f"{ci(sum(s['q_value'] < 0.05 for s in rf_fp), len(rf_fp))}; "
                      f"median r_true {msd([o['median_r_true'] for o in f])}; cells kept "
                      f"{msd([o['cells_kept'] for o in f])}")
                att = [
                    (o["beta_f_v1"] / o["beta_feature"]) / truth_ratio[(o["seed"], n_pre)]
                    for o in f
                    if arm != "true-features" and o["beta_f_v1"] is not None
                    and (o["seed"], n_pre) in truth_ratio
                ]
                if att:
                    print(f"- attenuation by twin error (twin beta_f / true-feature beta_f, "
                          f"same seed and connectome): {msd(att)}")
            if by["rf"]:
                r = by["rf"]
                ratio = [o["beta_r_v1"] / o["beta_rf_per_deg"] for o in r if o["beta_r_v1"] is not None]
                det = sum(
                    o["beta_r_v1_q"] is not None and o["beta_r_v1_q"] < 0.05
                    and o["beta_r_v1"] * o["beta_rf_per_deg"] > 0 for o in r
                )
                fs = [s for o in r for s in o["synaptic"] if s["measure"] == "FeatureSimilarity"]
                print(f"- RF: beta_r/true V1->V1 {msd(ratio)}; detected {ci(det, len(r))}; "
                      f"feature slopes q < 0.05 (confusion): "
                      f"{ci(sum(s['q_value'] < 0.05 for s in fs), len(fs))}")
        first = {}
        for o in rows:
            first.setdefault(o["seed"], o["decoding"])
        d = list(first.values())
        print("- decoding (balanced accuracy, per seed once):")
        for t in ["type", "area"]:
            print(f"  - {t}: features {msd([x[f'{t}_from_features'] for x in d])}, position "
                  f"{msd([x[f'{t}_from_position'] for x in d])}, both "
                  f"{msd([x[f'{t}_from_both'] for x in d])}, shuffled "
                  f"{msd([x[f'{t}_shuffled'] for x in d])}, chance {d[0][f'{t}_chance']:.3f}")
        fb = sum(o["fallback"] for o in rows)
        print(f"- fixed-effect fallbacks: {fb} of {len(rows)} analyses")
        print()


if __name__ == "__main__":
    main()
