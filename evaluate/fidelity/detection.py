"""Detection: how well a classifier tells real rows from synthetic rows (ROC AUC, cross-validated).

Per table, seeded samples of at most ``EvalOptions.max_rows`` real and synthetic rows are encoded from
the schema (see ``features``) and a classifier is cross-validated (stratified folds); its out-of-fold
scores give the ROC AUC, with a DeLong confidence interval (DeLong et al. 1988, fast algorithm of Sun &
Xu 2014). As in SDMetrics' LogisticDetection, the reported value is ``1 - 2 * max(AUC - 0.5, 0)``: 1 when
the classifier cannot beat a coin, 0 when it separates the two perfectly. Tables are averaged; the
interval combines the tables' AUC variances assuming independent samples (normal approximation).

* ``fidelity.detection.logistic``: logistic regression on standardized numbers and one-hot categories;
* ``fidelity.detection.gbt``: histogram gradient boosting with native categories and missing values.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from evaluate.context import EvalContext
from evaluate.fidelity._common import mean, require_rows, split_columns
from evaluate.fidelity.features import Encoder, blank_empty_numbers, fit_encoder, informative, sample_frame
from evaluate.registry import metric
from evaluate.result import Interval, MetricResult, Skipped

MIN_ROWS = 20
Z95 = 1.959963984540054


def delong_auc(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(AUC, variance of the AUC) by DeLong's method (DeLong, DeLong & Clarke-Pearson 1988), with the
    midrank algorithm of Sun & Xu (2014). ``y`` is 1 for the positive class."""
    y = np.asarray(y).astype(bool)
    pos, neg = np.asarray(score)[y], np.asarray(score)[~y]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's variance needs at least 2 rows of each class; got {m} and {n} instead.")
    from scipy.stats import rankdata  # lazily: scipy.stats takes a second to import, and most runs never get here

    tx, ty = rankdata(pos), rankdata(neg)
    tz = rankdata(np.concatenate([pos, neg]))
    auc = float((tz[:m].sum() - m * (m + 1) / 2.0) / (m * n))
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    var = float(np.var(v01, ddof=1) / m + np.var(v10, ddof=1) / n)
    return auc, var


def roc_points(y: np.ndarray, score: np.ndarray, grid: int = 21) -> dict[str, list[float]]:
    """True positive rate at ``grid`` evenly spaced false positive rates (a small ROC curve for plots)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, score)
    xs = np.linspace(0.0, 1.0, grid)
    return {"fpr": [round(float(x), 4) for x in xs], "tpr": [round(float(v), 4) for v in np.interp(xs, fpr, tpr)]}


def _logistic(seed: int) -> Callable[[Encoder, dict[str, np.ndarray], dict[str, np.ndarray]], tuple[Any, np.ndarray, np.ndarray]]:
    from sklearn.linear_model import LogisticRegression

    def build(enc: Encoder, fit_frame: dict[str, np.ndarray], frame: dict[str, np.ndarray]) -> tuple[Any, np.ndarray, np.ndarray]:
        center, scale = enc.numeric_scaling(fit_frame)
        return LogisticRegression(max_iter=1000, random_state=seed), enc.one_hot(frame, center, scale), np.array([])

    return build


def _gbt(seed: int) -> Callable[[Encoder, dict[str, np.ndarray], dict[str, np.ndarray]], tuple[Any, np.ndarray, np.ndarray]]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    def build(enc: Encoder, fit_frame: dict[str, np.ndarray], frame: dict[str, np.ndarray]) -> tuple[Any, np.ndarray, np.ndarray]:
        x_fit, mask = enc.ordinal(fit_frame)
        _, x = blank_empty_numbers(x_fit, x_fit if frame is fit_frame else enc.ordinal(frame)[0], mask)
        model = HistGradientBoostingClassifier(
            max_iter=100, random_state=seed, categorical_features=mask if mask.any() else None, early_stopping=False
        )
        return model, x, mask

    return build


def detect_table(
    real: dict[str, np.ndarray],
    synthetic: dict[str, np.ndarray],
    encoder: Encoder,
    model: str,
    *,
    seed: int,
    folds: int,
    threads: int = 1,
) -> tuple[float, float, np.ndarray, np.ndarray, list[str]]:
    """Cross-validated out-of-fold scores of one classifier: (AUC, AUC variance, labels, scores, notes).

    Models are fitted with ``threads`` OpenMP / BLAS threads (1 by default: fitting on bounded samples
    is quick, and oversubscribed OpenMP threads slow down by an order of magnitude on shared machines).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    n_r = len(next(iter(real.values())))
    n_s = len(next(iter(synthetic.values())))
    frame = {k: np.concatenate([np.asarray(real[k], dtype=object if real[k].dtype == object else None), synthetic[k]]) for k in real}
    y = np.concatenate([np.zeros(n_r, dtype=np.int64), np.ones(n_s, dtype=np.int64)])
    build = _logistic(seed) if model == "logistic" else _gbt(seed)
    scores = np.zeros(len(y))
    notes: list[str] = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    import sklearn.ensemble  # noqa: F401  (load the OpenMP runtime before limiting its threads)
    import sklearn.linear_model  # noqa: F401

    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=threads):
        warnings.filterwarnings("always", category=ConvergenceWarning)
        for train_idx, test_idx in splitter.split(np.zeros(len(y)), y):
            fit_part = {k: v[train_idx] for k, v in frame.items()}
            test_part = {k: v[test_idx] for k, v in frame.items()}
            clf, x_fit, _ = build(encoder, fit_part, fit_part)
            _, x_test, _ = build(encoder, fit_part, test_part)
            clf.fit(x_fit, y[train_idx])
            scores[test_idx] = clf.predict_proba(x_test)[:, 1]
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append("the logistic regression did not fully converge in some folds")
    auc, var = delong_auc(y, scores)
    return auc, var, y, scores, notes


def _run(ctx: EvalContext, model: str) -> MetricResult:
    name = f"fidelity.detection.{model}"
    require_rows(ctx, name)
    seed = ctx.options.seed
    n_max = int(ctx.options.param(name, "max_rows", ctx.options.max_rows))
    folds = int(ctx.options.param(name, "folds", 5))
    top = int(ctx.options.param(name, "top_categories", 20))
    threads = int(ctx.options.param(name, "threads", 1))
    if folds < 2:
        raise ValueError(f"The 'folds' parameter of {name} must be an integer >= 2; got {folds!r} instead.")
    if n_max < MIN_ROWS:
        raise ValueError(f"The 'max_rows' option of {name} must be at least {MIN_ROWS}; got {n_max!r} instead.")
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    variances: list[float] = []
    for tname in ctx.schema.topological_order():
        table = ctx.schema.tables[tname]
        if table.reference:
            skipped.append(Skipped("reference table: holds no patient rows", table=tname))
            continue
        split = split_columns(table)
        skipped.extend(split.skipped)
        real_rel, syn_rel = ctx.train.sql_name(tname), ctx.synthetic.sql_name(tname)
        n_real = int(ctx.con.execute(f"SELECT count(*) FROM {real_rel}").fetchall()[0][0])
        n_syn = int(ctx.con.execute(f"SELECT count(*) FROM {syn_rel}").fetchall()[0][0])
        if min(n_real, n_syn) < max(MIN_ROWS, 2 * folds):
            skipped.append(Skipped(f"too few rows to cross-validate ({n_real} real, {n_syn} synthetic)", table=tname))
            continue
        if not split.scored:
            skipped.append(Skipped("no column to learn from", table=tname))
            continue
        real = sample_frame(ctx.con, real_rel, split.scored, min(n_max, n_real), seed, key=table.primary_key)
        syn = sample_frame(ctx.con, syn_rel, split.scored, min(n_max, n_syn), seed, key=table.primary_key)
        cols = informative(split.scored, [real, syn])
        if not cols:
            skipped.append(Skipped("every column is constant or empty in the samples", table=tname))
            continue
        encoder = fit_encoder(cols, real, top=top)
        auc, var, y, scores, fold_notes = detect_table(real, syn, encoder, model, seed=seed, folds=folds, threads=threads)
        notes.extend(f"{tname}: {n}" for n in fold_notes)
        sd = math.sqrt(max(var, 0.0))
        variances.append(var)
        rows.append(
            {
                "table": tname,
                "value": 1.0 - 2.0 * max(auc - 0.5, 0.0),
                "auc": auc,
                "auc_ci": [max(0.0, auc - Z95 * sd), min(1.0, auc + Z95 * sd)],
                "n_real": len(next(iter(real.values()))),
                "n_synthetic": len(next(iter(syn.values()))),
                "features": encoder.n_features,
                "roc": roc_points(y, scores),
            }
        )
    value = mean(r["value"] for r in rows)
    ci = None
    if rows:
        k = len(rows)
        clipped = mean(max(r["auc"], 0.5) for r in rows) or 0.5
        sd = math.sqrt(sum(variances)) / k
        lo_auc, hi_auc = max(0.5, clipped - Z95 * sd), min(1.0, clipped + Z95 * sd)
        ci = Interval(max(0.0, 2.0 * (1.0 - hi_auc)), min(1.0, 2.0 * (1.0 - lo_auc)))
    notes = [
        f"seeded samples of at most {n_max} rows per side and table (rows ordered by a hash of their values and the seed)",
        f"{folds}-fold stratified cross-validation; value = 1 - 2 * max(AUC - 0.5, 0) (SDMetrics' detection score)",
        "interval: DeLong variance of each table's AUC, tables combined as independent, normal approximation",
        *notes,
    ]
    return MetricResult(
        name=name,
        family="fidelity",
        value=value,
        goal="maximize",
        ci=ci,
        n=sum(r["n_real"] + r["n_synthetic"] for r in rows),
        details=tuple(rows),
        skipped=tuple(skipped),
        notes=tuple(notes),
        seed=seed,
    )


@metric(
    "fidelity.detection.logistic",
    family="fidelity",
    description="Logistic regression telling real from synthetic rows (1 - 2 * max(AUC - 0.5, 0))",
)
def detection_logistic(ctx: EvalContext) -> list[MetricResult]:
    """Logistic-regression detection score per table, averaged (see the module docstring)."""
    return [_run(ctx, "logistic")]


@metric(
    "fidelity.detection.gbt",
    family="fidelity",
    description="Gradient boosting telling real from synthetic rows (1 - 2 * max(AUC - 0.5, 0))",
)
def detection_gbt(ctx: EvalContext) -> list[MetricResult]:
    """Gradient-boosting detection score per table, averaged (see the module docstring)."""
    return [_run(ctx, "gbt")]
