"""The paper's regression ANN: inputs -> 10 tanh -> 6 linear, trained by Levenberg-Marquardt.

`bayesian=True` is MacKay's Bayesian regularisation (MATLAB's trainbr): minimise
F = beta E_D + alpha E_W with E_D = 1/2 sum(e^2), E_W = 1/2 sum(w^2), and after every
LM step re-estimate the hyper-parameters from the evidence,
    gamma = sum_i beta l_i / (beta l_i + alpha)   (l_i: eigenvalues of J^T J),
    alpha = gamma / (2 E_W),   beta = (N - gamma) / (2 E_D),
where gamma is the effective number of parameters and N the number of residuals.
`bayesian=False` is plain LM on the squared error (alpha = 0, beta = 1).

Inputs and targets are standardised with the training set's mean and standard deviation.
Linear algebra goes through the eigen-decomposition of the smaller of J^T J and J J^T,
so one decomposition per iteration serves every damping value tried and gamma.
"""

from __future__ import annotations

import numpy as np

from dlreg.rigid3d.ann import HIDDEN, ANNModel

# Initial weight precision of the Bayesian fit (standardised units); the evidence updates take over.
ALPHA0 = 0.01


def _unpack(w: np.ndarray, n_in: int, n_hidden: int, n_out: int):
    i = 0
    w1 = w[i:i + n_hidden * n_in].reshape(n_hidden, n_in)
    i += n_hidden * n_in
    b1 = w[i:i + n_hidden]
    i += n_hidden
    w2 = w[i:i + n_out * n_hidden].reshape(n_out, n_hidden)
    i += n_out * n_hidden
    return w1, b1, w2, w[i:i + n_out]


def _residuals_jacobian(w: np.ndarray, x: np.ndarray, y: np.ndarray, n_hidden: int,
                        need_jacobian: bool = True):
    """Residuals e = f(x) - y, flattened (N * n_out), and their Jacobian d e / d w."""
    n, n_in = x.shape
    n_out = y.shape[1]
    w1, b1, w2, b2 = _unpack(w, n_in, n_hidden, n_out)
    h = np.tanh(x @ w1.T + b1)
    e = (h @ w2.T + b2 - y).ravel()
    if not need_jacobian:
        return e, None
    # d out_k / d w1[j, i] = w2[k, j] (1 - h_j^2) x_i ; d / d b1[j] = w2[k, j] (1 - h_j^2)
    dh = 1.0 - h * h                                                  # (N, H)
    g = w2[None, :, :] * dh[:, None, :]                               # (N, K, H)
    j_w1 = (g[:, :, :, None] * x[:, None, None, :]).reshape(n, n_out, -1)
    j_w2 = np.zeros((n, n_out, n_out, n_hidden))
    j_w2[:, np.arange(n_out), np.arange(n_out), :] = h[:, None, :]
    j_b2 = np.broadcast_to(np.eye(n_out), (n, n_out, n_out))
    jac = np.concatenate([j_w1, g, j_w2.reshape(n, n_out, -1), j_b2], axis=2)
    return e, jac.reshape(n * n_out, -1)


def _spectrum(jac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues l and orthonormal eigenvectors V (P x r) of J^T J on its row space."""
    m, p = jac.shape
    if p <= m:
        return np.linalg.eigh(jac.T @ jac)
    lam, u = np.linalg.eigh(jac @ jac.T)
    keep = lam > lam.max() * 1e-12
    lam, u = lam[keep], u[:, keep]
    return lam, (jac.T @ u) / np.sqrt(lam)


def _solve(lam: np.ndarray, v: np.ndarray, beta: float, damping: float, g: np.ndarray) -> np.ndarray:
    """(beta J^T J + damping I)^-1 g through the spectrum (damping > 0)."""
    coef = v.T @ g
    return v @ (coef / (beta * lam + damping)) + (g - v @ coef) / damping


def train_lm(x: np.ndarray, y: np.ndarray, *, bayesian: bool = True, hidden: int = HIDDEN,
             iterations: int = 100, seed: int = 0, x_val: np.ndarray | None = None,
             y_val: np.ndarray | None = None, mu: float = 5e-3, mu_max: float = 1e10) -> ANNModel:
    """Fit the ANN by (Bayesian-regularised) Levenberg-Marquardt; records per-iteration history.

    history entries: iteration, train_mse and (with validation data) val_mse in target
    units, alpha, beta, gamma, mu.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need (N, inputs) and (N, outputs) training arrays, got {x.shape}, {y.shape}")
    x_mean, x_std = x.mean(0), x.std(0) + 1e-8
    y_mean, y_std = y.mean(0), y.std(0) + 1e-8
    xs, ys = (x - x_mean) / x_std, (y - y_mean) / y_std
    n_in, n_out = x.shape[1], y.shape[1]
    rng = np.random.default_rng(seed)
    w = np.concatenate([rng.normal(0, 1 / np.sqrt(n_in), hidden * n_in), np.zeros(hidden),
                        rng.normal(0, 1 / np.sqrt(hidden), n_out * hidden), np.zeros(n_out)])
    n_res = ys.size
    alpha, beta, gamma = (ALPHA0 if bayesian else 0.0), 1.0, float(w.size)
    model = ANNModel(*_unpack(w, n_in, hidden, n_out), x_mean, x_std, y_mean, y_std)

    def objective(weights: np.ndarray, a: float, b: float) -> float:
        e, _ = _residuals_jacobian(weights, xs, ys, hidden, need_jacobian=False)
        return 0.5 * b * float(e @ e) + 0.5 * a * float(weights @ weights)

    for it in range(iterations):
        e, jac = _residuals_jacobian(w, xs, ys, hidden)
        f0 = 0.5 * beta * float(e @ e) + 0.5 * alpha * float(w @ w)
        grad = beta * (jac.T @ e) + alpha * w
        lam, v = _spectrum(jac)
        accepted = False
        while mu <= mu_max:
            step = _solve(lam, v, beta, alpha + mu, grad)
            if objective(w - step, alpha, beta) < f0:
                w, mu, accepted = w - step, mu * 0.1, True
                break
            mu *= 10.0
        if bayesian:  # evidence update with the Gauss-Newton Hessian of this iteration
            e, _ = _residuals_jacobian(w, xs, ys, hidden, need_jacobian=False)
            gamma = min(float(np.sum(beta * lam / (beta * lam + alpha))), n_res - 1.0)
            alpha = gamma / max(float(w @ w), 1e-12)
            beta = (n_res - gamma) / max(float(e @ e), 1e-12)
        model = ANNModel(*_unpack(w.copy(), n_in, hidden, n_out), x_mean, x_std, y_mean, y_std,
                         alpha, beta, gamma, model.history)
        record = {"iteration": it, "train_mse": float(np.mean((model.predict(x) - y) ** 2)),
                  "alpha": alpha, "beta": beta, "gamma": gamma, "mu": mu}
        if x_val is not None and y_val is not None:
            record["val_mse"] = float(np.mean((model.predict(x_val) - np.asarray(y_val, float)) ** 2))
        model.history.append(record)
        if not accepted or float(np.linalg.norm(grad)) < 1e-7:
            break
    return model


def r_squared(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination over all outputs (pooled, as a regression plot's R^2)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - y_true.mean(axis=0)) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
