"""Utility: does a model trained on synthetic data predict real patients as well as one trained on real data?

For a target column the user names (``EvalOptions.target = "table.column"``), rows of the target's table
are sampled (seeded, at most ``EvalOptions.max_rows`` per side) from the synthetic data, the real
training data and the real holdout, with the other columns of that table as features (for the patient
table, also each patient's number of rows in every table below it). A histogram gradient boosting model
is fitted on synthetic rows and on real training rows and both are scored on the same holdout rows:

* ``utility.tstr``: train on synthetic, test on real (Esteban et al. 2017);
* ``utility.trtr``: train on real, test on real, the reference;
* ``utility.ratio``: TSTR / TRTR, capped at 1 (1 = the synthetic data is as useful as the real data).

Classification (categorical, code or boolean target; the 20 most frequent classes of the real training
sample, the rest ``other``) is scored by macro-averaged F1, regression (numerical or datetime target)
by R² capped below at 0. Confidence intervals: percentile bootstrap over holdout rows (seeded), the
same resamples for all three numbers.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from data_schemas.model import Column, Schema
from data_schemas.rules import quote, with_patient_key_sql
from evaluate.context import EvalContext
from evaluate.fidelity._common import SHAPES, never_scored_reason, require_rows
from evaluate.fidelity.features import Encoder, blank_empty_numbers, fit_encoder, informative, sample_frame
from evaluate.registry import metric
from evaluate.result import Interval, MetricResult, Skipped, skipped_result

NAMES = ("utility.tstr", "utility.trtr", "utility.ratio")
MIN_ROWS = 20
TOP_CLASSES = 20


def _skip_all(reason: str) -> list[MetricResult]:
    return [skipped_result(name, "utility", "maximize", reason) for name in NAMES]


def resolve_target(schema: Schema, target: str) -> tuple[str, Column]:
    """The (table, column) named by ``table.column`` (or a column name of the patient table)."""
    table, _, column = target.rpartition(".")
    table = table or schema.patient.table
    if table not in schema.tables:
        raise ValueError(f"The target {target!r} names no table of schema {schema.name!r}; known: {', '.join(schema.tables)}.")
    if column not in schema.tables[table].columns:
        raise ValueError(f"The target {target!r} names no column of table {table!r}.")
    return table, schema.tables[table].columns[column]


def _child_counts(schema: Schema, table: str) -> list[str]:
    """Tables below the patient table whose rows can be counted per patient."""
    if table != schema.patient.table:
        return []
    return [t for t in schema.topological_order() if t != table and not schema.tables[t].reference and schema.path_to_patient(t)]


def _relation_with_counts(ctx_schema: Schema, relations: dict[str, str], table: str, counted: list[str]) -> str:
    """The target table with one ``__n_<table>`` column per counted child table (0 when none)."""
    if not counted:
        return relations[table]
    pk = quote(ctx_schema.patient.column)
    joins = []
    cols = []
    for i, child in enumerate(counted):
        sub = f"(SELECT __patient_key AS k, count(*) AS n FROM ({with_patient_key_sql(ctx_schema, child, relations)}) GROUP BY 1)"
        joins.append(f"LEFT JOIN {sub} c{i} ON t.{pk} = c{i}.k")
        cols.append(f"CAST(coalesce(c{i}.n, 0) AS DOUBLE) AS {quote('__n_' + child)}")
    return f"(SELECT t.*, {', '.join(cols)} FROM {relations[table]} t {' '.join(joins)})"


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over the classes present in ``y_true`` or ``y_pred`` (integer labels), as
    ``sklearn.metrics.f1_score(average="macro", zero_division=0)``: mean of ``2 TP / (2 TP + FP + FN)``."""
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_classes).astype(np.float64)
    true_n = np.bincount(y_true, minlength=n_classes).astype(np.float64)
    pred_n = np.bincount(y_pred, minlength=n_classes).astype(np.float64)
    present = (true_n + pred_n) > 0
    denom = (true_n + pred_n)[present]
    return float(np.mean(2.0 * tp[present] / denom)) if present.any() else 0.0


def r2_capped(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``, capped below at 0 (0 for a constant truth)."""
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot <= 0:
        return 0.0
    return max(0.0, 1.0 - float(np.sum((y_true - y_pred) ** 2)) / ss_tot)


def _score(task: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    return macro_f1(y_true, y_pred, n_classes) if task == "classification" else r2_capped(y_true, y_pred)


L2 = 1.0  # the utility classifier's l2 regularisation (see _fit_predict)


def _fit_predict(task: str, x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cats = mask if mask.any() else None
    x_fit, x_test = blank_empty_numbers(x_fit, x_test, mask)
    if task == "classification":
        classes = np.unique(y_fit)
        if len(classes) == 1:
            return np.full(len(x_test), classes[0])
        # l2_regularization: without it the multiclass fit can diverge (leaf values of 1e4-1e5 from near-zero
        # hessians) and predict the majority class for every row: a Synthea cart cohort scored TSTR 0.068 while
        # its first 115 patients scored 0.72 (tests/unit/evaluate/test_utility.py)
        clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed, categorical_features=cats, early_stopping=False,
                                             l2_regularization=L2)
        return clf.fit(x_fit, y_fit).predict(x_test)
    reg = HistGradientBoostingRegressor(max_iter=100, random_state=seed, categorical_features=cats, early_stopping=False)
    return reg.fit(x_fit, y_fit).predict(x_test)


def _labels(values: np.ndarray, task: str, classes: tuple[str, ...]) -> np.ndarray:
    """Regression targets as floats; class labels as integers (index in ``classes``, len(classes) = other)."""
    if task == "regression":
        return np.asarray(values, dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(str(v), len(classes)) for v in values], dtype=np.int64)


@metric(
    "utility.tstr",
    family="utility",
    description="Train on synthetic, test on real holdout (TSTR) vs train on real (TRTR), for --target",
    produces=NAMES,
    needs_holdout=True,
)
def tstr(ctx: EvalContext) -> list[MetricResult]:
    """TSTR, TRTR and their ratio for ``EvalOptions.target`` (see the module docstring)."""
    if ctx.options.target is None:
        return _skip_all("no --target given")
    if ctx.holdout is None:
        return _skip_all("needs a real holdout set (--holdout) that was not given")
    require_rows(ctx, "utility.tstr")
    table, target = resolve_target(ctx.schema, ctx.options.target)
    reason = never_scored_reason(target)
    if reason is not None:
        return _skip_all(f"target {ctx.options.target}: {reason}")
    task = "classification" if SHAPES[target.type] == "discrete" else "regression"
    seed = ctx.options.seed
    n_max = int(ctx.options.param("utility.tstr", "max_rows", ctx.options.max_rows))
    n_boot = int(ctx.options.param("utility.tstr", "bootstrap", 200))
    threads = int(ctx.options.param("utility.tstr", "threads", 1))
    tbl = ctx.schema.tables[table]
    skipped: list[Skipped] = []
    features: list[Column] = []
    for col in tbl.columns.values():
        if col.name == target.name:
            continue
        why = never_scored_reason(col)
        if why is not None:
            skipped.append(Skipped(why, table=table, column=col.name))
        else:
            features.append(col)
    counted = _child_counts(ctx.schema, table)
    count_cols = [Column(name=f"__n_{c}", type="numerical") for c in counted]
    columns = [*features, *count_cols, target]
    frames: dict[str, dict[str, np.ndarray]] = {}
    for side, ds in (("synthetic", ctx.synthetic), ("train", ctx.train), ("holdout", ctx.holdout)):
        rel = _relation_with_counts(ctx.schema, ds.relations(), table, counted)
        rel = f"(SELECT * FROM {rel} WHERE {quote(target.name)} IS NOT NULL)"
        n = int(ctx.con.execute(f"SELECT count(*) FROM {rel}").fetchall()[0][0])
        if n < MIN_ROWS:
            return _skip_all(f"the {side} data has {n} rows with a target value; at least {MIN_ROWS} are needed")
        frames[side] = sample_frame(ctx.con, rel, columns, min(n, n_max), seed, key=tbl.primary_key)
    usable = informative([*features, *count_cols], list(frames.values()))
    for col in [*features, *count_cols]:
        if col not in usable:
            skipped.append(Skipped("constant or empty in the samples: not a feature", table=table, column=col.name))
    if not usable:
        return _skip_all(f"no informative feature for target {ctx.options.target}")
    encoder: Encoder = fit_encoder(usable, frames["train"])
    classes: tuple[str, ...] = ()
    if task == "classification":
        values, counts = np.unique(np.asarray([str(v) for v in frames["train"][target.name]], dtype=object), return_counts=True)
        order = sorted(zip(values, counts), key=lambda vc: (-int(vc[1]), str(vc[0])))
        classes = tuple(str(v) for v, _ in order[:TOP_CLASSES])
    x = {side: encoder.ordinal(frame)[0] for side, frame in frames.items()}
    mask = encoder.ordinal(frames["train"])[1]
    y = {side: _labels(frame[target.name], task, classes) for side, frame in frames.items()}
    import sklearn.ensemble  # noqa: F401  (load the OpenMP runtime before limiting its threads)

    with threadpool_limits(limits=threads):
        pred_syn = _fit_predict(task, x["synthetic"], y["synthetic"], x["holdout"], mask, seed)
        pred_real = _fit_predict(task, x["train"], y["train"], x["holdout"], mask, seed)
    y_test = y["holdout"]
    n_classes = len(classes) + 1
    pred_syn = np.asarray(pred_syn, dtype=np.int64 if task == "classification" else np.float64)
    pred_real = np.asarray(pred_real, dtype=np.int64 if task == "classification" else np.float64)
    tstr_v = _score(task, y_test, pred_syn, n_classes)
    trtr_v = _score(task, y_test, pred_real, n_classes)
    rng = np.random.default_rng(seed)
    boot_t, boot_r, boot_q = [], [], []
    n_test = len(y_test)
    for _ in range(n_boot):
        idx = rng.integers(0, n_test, n_test)
        t_b, r_b = _score(task, y_test[idx], pred_syn[idx], n_classes), _score(task, y_test[idx], pred_real[idx], n_classes)
        boot_t.append(t_b)
        boot_r.append(r_b)
        if r_b > 0:
            boot_q.append(min(t_b / r_b, 1.0))

    def interval(samples: list[float]) -> Interval | None:
        if len(samples) < max(20, n_boot // 2):
            return None
        lo, hi = np.percentile(samples, [2.5, 97.5])
        return Interval(float(lo), float(hi))

    metric_name = "macro F1" if task == "classification" else "R² (capped below at 0)"
    common: dict[str, Any] = {
        "target": f"{table}.{target.name}",
        "task": task,
        "score": metric_name,
        "model": "HistGradientBoosting" + ("Classifier" if task == "classification" else "Regressor"),
        "n_synthetic": len(y["synthetic"]),
        "n_train": len(y["train"]),
        "n_holdout": n_test,
        "features": [c.name for c in usable],
    }
    if classes:
        common["classes"] = [*classes, "other"]
    notes = (
        f"seeded samples of at most {n_max} rows per side; {metric_name} on the real holdout",
        f"percentile bootstrap over holdout rows ({n_boot} resamples, seed {seed})",
        "category vocabularies and classes from the real training sample (top 20, the rest 'other')",
    )
    results = [
        MetricResult("utility.tstr", "utility", tstr_v, "maximize", ci=interval(boot_t), n=n_test,
                     details=({**common, "value": tstr_v},), skipped=tuple(skipped), notes=notes, seed=seed),
        MetricResult("utility.trtr", "utility", trtr_v, "maximize", ci=interval(boot_r), n=n_test,
                     details=({**common, "value": trtr_v},), skipped=tuple(skipped), notes=notes, seed=seed),
    ]
    if trtr_v <= 0:
        results.append(
            MetricResult("utility.ratio", "utility", None, "maximize", n=n_test, details=({**common, "tstr": tstr_v, "trtr": trtr_v},),
                         skipped=(Skipped("TRTR is 0: the target is not predictable from the real data, so the ratio is undefined"),),
                         notes=notes, seed=seed)
        )
    else:
        raw = tstr_v / trtr_v
        results.append(
            MetricResult("utility.ratio", "utility", min(raw, 1.0), "maximize", ci=interval(boot_q), n=n_test,
                         details=({**common, "tstr": tstr_v, "trtr": trtr_v, "ratio_uncapped": raw},), skipped=tuple(skipped),
                         notes=(*notes, "ratio capped at 1 (synthetic training as good as real)"), seed=seed)
        )
    return results
