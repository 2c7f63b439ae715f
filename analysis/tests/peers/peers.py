"""Independent references for twinloop-analysis' tests (statsmodels, scipy, numpy).

Usage: python peers.py <command> <input.csv> [args...]; prints one JSON object.
The input CSV has a header; column roles are given per command below.
"""
import json
import sys

import numpy as np


def load(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return {h: data[:, i] for i, h in enumerate(header)}


def design(cols):
    xs = sorted((k for k in cols if k.startswith("x")), key=lambda k: int(k[1:]))
    return np.column_stack([cols[k] for k in xs])


def glm(path, family, power=None):
    import statsmodels.api as sm

    c = load(path)
    fam = sm.families.Poisson() if family == "poisson" else sm.families.Tweedie(
        var_power=float(power), link=sm.families.links.Log())
    res = sm.GLM(c["y"], design(c), family=fam, offset=c["offset"]).fit(tol=1e-13, maxiter=200)
    return {"params": res.params.tolist(), "bse": res.bse.tolist(), "scale": float(res.scale)}


def welch(path):
    from scipy import stats

    c = load(path)
    a, b = c["a"], c["b"][~np.isnan(c["b"])]
    r = stats.ttest_ind(a, b, equal_var=False)
    return {"t": float(r.statistic), "p": float(r.pvalue), "df": float(r.df)}


def bh(path):
    from scipy import stats

    return {"q": stats.false_discovery_control(load(path)["p"], method="bh").tolist()}


def permutation(path, kind):
    from scipy import stats

    c = load(path)
    a, b = c["a"], c["b"]
    out = {}
    for alt in ["greater", "less", "two-sided"]:
        if kind == "independent":
            r = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                       permutation_type="independent", vectorized=True,
                                       n_resamples=10**7, alternative=alt)
        else:
            r = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis),
                                       permutation_type="samples", vectorized=True,
                                       n_resamples=10**7, alternative=alt)
        out[alt] = float(r.pvalue)
    return out


def glmm_loglik(theta, X, y, off, g, n_groups):
    """Poisson random-intercept marginal log-likelihood by adaptive-free scipy quadrature."""
    from scipy import integrate
    from scipy.special import gammaln

    p = X.shape[1]
    beta, sd = theta[:p], np.exp(theta[p])
    eta = X @ beta + off
    total = 0.0
    for k in range(n_groups):
        m = g == k
        ek, yk = eta[m], y[m]
        const = -gammaln(yk + 1).sum()

        def logf(u):
            return (yk * (ek + u) - np.exp(ek + u)).sum() - 0.5 * (u / sd) ** 2

        # Centre the integrand on its maximum (Newton on a concave function) so quad sees values
        # near 1, and give it the posterior width to resolve the peak.
        u0 = 0.0
        for _ in range(100):
            mu = np.exp(ek + u0)
            step = (yk.sum() - mu.sum() - u0 / sd**2) / (mu.sum() + 1 / sd**2)
            u0 += np.clip(step, -3, 3)
            if abs(step) < 1e-12:
                break
        width = 1 / np.sqrt(np.exp(ek + u0).sum() + 1 / sd**2)
        top = logf(u0)
        val, _ = integrate.quad(lambda u: np.exp(logf(u) - top), u0 - 40 * width, u0 + 40 * width,
                                points=[u0], epsabs=0, epsrel=1e-12, limit=400)
        total += const + top + np.log(val) - 0.5 * np.log(2 * np.pi * sd * sd)
    return total


def glmm(path, theta_rust):
    from scipy import optimize
    import statsmodels.api as sm

    c = load(path)
    X, y, off, g = design(c), c["y"], c["offset"], c["group"].astype(int)
    n_groups = g.max() + 1
    start = np.append(sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit().params, 0.0)
    f = lambda t: -glmm_loglik(t, X, y, off, g, n_groups)
    res = optimize.minimize(f, start, method="BFGS", options={"gtol": 1e-8})
    theta = res.x
    # Observed information by central differences of the quadrature log-likelihood.
    q, h = len(theta), 1e-4
    H = np.zeros((q, q))
    for i in range(q):
        for j in range(q):
            ei, ej = np.eye(q)[i] * h, np.eye(q)[j] * h
            H[i, j] = (f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)) / (4 * h * h)
    cov = np.linalg.inv(H)
    theta_rust = np.array([float(v) for v in theta_rust.split(":")])
    return {"theta": theta.tolist(), "se": np.sqrt(np.diag(cov)).tolist(), "loglik": -float(res.fun),
            "loglik_at_rust": glmm_loglik(theta_rust, X, y, off, g, n_groups)}


def mnlogit(path):
    import statsmodels.api as sm

    c = load(path)
    X = sm.add_constant(design(c))
    res = sm.MNLogit(c["label"].astype(int), X).fit(method="newton", maxiter=200, tol=1e-12, disp=0)
    return {"prob": res.predict(X).tolist()}


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    out = {"glm": glm, "welch": welch, "bh": bh, "permutation": permutation, "glmm": glmm,
           "mnlogit": mnlogit}[cmd](*args)
    print(json.dumps(out))
