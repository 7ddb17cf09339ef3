"""Quasi-identifier risk: k-anonymity classes and synthetic records that point at rare real patients.

The quasi-identifiers are the patient table's columns tagged ``quasi_identifier`` in the schema
(taken from a patient's first row when the table has several per patient), *generalised* the way
ARX and sdcMicro generalise before counting classes, because an attacker's background knowledge is
coarse and exact values make every patient unique (with exact birth dates a near-copy shifted by one
day matched no class and scored better than fresh patients): dates become bands of
``date_band_years`` years (default 5) of their year, numbers one of ``numeric_bins`` (default 10)
quantile bands of train, and a categorical column with more than ``max_qi_categories`` (default 100)
distinct training values (a county code, a postcode) is taken to its hierarchy's top and left out of
the classes, said in the notes (the coarser geographic QIs, a state or region, stay). Patients sharing
every generalised value form an equivalence class (Sweeney, "k-anonymity", 2002); the generalisation is
``synth.qi_classes``'s, the one ``cart``'s ``min_patients`` counts classes with. All in SQL over all
patients (no sampling); only counts leave the database.

* ``privacy.k_anonymity.small_class_share``: the share of synthetic patients whose quasi-identifier
  combination matches a class of fewer than ``k`` (default 5) training patients. A synthetic record
  pointing at a small real class narrows an attacker's search to fewer than k people.
* ``privacy.unique_qi_matches``: the share of synthetic patients whose combination matches exactly one
  training patient.

For both, the baseline is the same share for holdout patients (fresh people of the same population
matched against the same training data): a generator that learnt the population, not its patients,
matches small classes about as often. The class-size distributions of the training data and of the
synthetic data are in the details.
"""
from __future__ import annotations

from typing import Any

from evaluate.context import EvalContext
from evaluate.errors import EmptyInputError
from evaluate.privacy.params import check_int, confidence_param, get_param
from evaluate.privacy.stats import wilson_interval
from evaluate.registry import metric
from evaluate.result import MetricResult, skipped_result
from synth.load import Dataset
from synth.qi_classes import DATE_BAND_YEARS, MAX_QI_CATEGORIES, NUMERIC_BINS, generalise, qi_combinations_sql

NAME = "privacy.k_anonymity"
SMALL = "privacy.k_anonymity.small_class_share"
UNIQUE = "privacy.unique_qi_matches"
BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 9), (10, 19), (20, None))


def _bucket_sql(expr: str) -> str:
    cases = " ".join(
        f"WHEN {expr} BETWEEN {lo} AND {hi} THEN '{lo}-{hi}'" if hi else f"WHEN {expr} >= {lo} THEN '{lo}+'"
        for lo, hi in BUCKETS
    )
    return f"CASE WHEN {expr} = 0 THEN '0' {cases} END"


def qi_risk(train: Dataset, synthetic: Dataset, holdout: Dataset | None, columns: list[str], *, k: int,
            generalised: dict[str, str] | None = None) -> dict[str, Any]:
    """Counts behind both metrics (see the module docstring), all computed in SQL."""
    con = train.con
    train_sql = qi_combinations_sql(train, columns, generalised)
    classes = f"(SELECT combo, count(*) AS n FROM ({train_sql}) GROUP BY combo)"
    out: dict[str, Any] = {}
    dist = con.execute(
        f"SELECT {_bucket_sql('n')} AS b, count(*) AS classes, sum(n) AS patients FROM {classes} GROUP BY b"
    ).fetchall()
    out["train_classes"] = {str(b): (int(c), int(p)) for b, c, p in dist}
    out["n_train"] = int(sum(p for _, p in out["train_classes"].values()))
    for name, ds in (("synthetic", synthetic), ("holdout", holdout)):
        if ds is None:
            continue
        rows = con.execute(
            f"SELECT {_bucket_sql('coalesce(c.n, 0)')} AS b, count(*) AS patients, "
            f"count(*) FILTER (WHERE c.n = 1) AS uniq, count(*) FILTER (WHERE c.n BETWEEN 1 AND {k - 1}) AS small "
            f"FROM ({qi_combinations_sql(ds, columns, generalised)}) s LEFT JOIN {classes} c ON s.combo = c.combo GROUP BY b"
        ).fetchall()
        out[f"{name}_matches"] = {str(b): int(p) for b, p, _, _ in rows}
        out[f"n_{name}"] = int(sum(int(p) for _, p, _, _ in rows))
        out[f"{name}_unique"] = int(sum(int(u) for _, _, u, _ in rows))
        out[f"{name}_small"] = int(sum(int(s) for _, _, _, s in rows))
    own = con.execute(
        f"SELECT {_bucket_sql('n')} AS b, count(*), sum(n) FROM (SELECT combo, count(*) AS n FROM "
        f"({qi_combinations_sql(synthetic, columns, generalised)}) GROUP BY combo) GROUP BY b"
    ).fetchall()
    out["synthetic_classes"] = {str(b): (int(c), int(p)) for b, c, p in own}
    return out


@metric(NAME, family="privacy", description="k-anonymity classes of quasi-identifiers and synthetic matches to rare real patients",
        produces=(SMALL, UNIQUE))
def k_anonymity(ctx: EvalContext) -> list[MetricResult]:
    k = check_int(get_param(ctx, NAME, "k", 5), "k", NAME, low=2, high=1_000_000)
    band = check_int(get_param(ctx, NAME, "date_band_years", DATE_BAND_YEARS), "date_band_years", NAME, low=1, high=100)
    bins = check_int(get_param(ctx, NAME, "numeric_bins", NUMERIC_BINS), "numeric_bins", NAME, low=2, high=1000)
    max_cat = check_int(get_param(ctx, NAME, "max_qi_categories", MAX_QI_CATEGORIES), "max_qi_categories", NAME, low=1)
    confidence = confidence_param(ctx, NAME)
    schema = ctx.schema
    qis = [c for _, c in schema.quasi_identifiers(schema.patient.table)]
    columns, generalised, gen_notes = generalise(ctx.train, qis, date_band_years=band, numeric_bins=bins,
                                                 max_categories=max_cat)
    if not columns:
        reason = (f"the schema declares no quasi_identifier column on the patient table {schema.patient.table!r}" if not qis
                  else "every quasi-identifier was generalised away: " + "; ".join(gen_notes))
        return [skipped_result(SMALL, "privacy", "minimize", reason), skipped_result(UNIQUE, "privacy", "minimize", reason)]
    counts = qi_risk(ctx.train, ctx.synthetic, ctx.holdout, columns, k=k, generalised=generalised)
    n = counts["n_synthetic"]
    if n == 0:
        raise EmptyInputError("the synthetic data has no patients")
    details: list[dict[str, Any]] = []
    for bucket, (classes, patients) in sorted(counts["train_classes"].items()):
        details.append({"kind": "train_class_sizes", "class_size": bucket, "classes": classes, "patients": patients,
                        "share_of_patients": patients / max(1, counts["n_train"])})
    for bucket, (classes, patients) in sorted(counts["synthetic_classes"].items()):
        details.append({"kind": "synthetic_class_sizes", "class_size": bucket, "classes": classes, "patients": patients,
                        "share_of_patients": patients / n})
    for who in ("synthetic", "holdout"):
        for bucket, patients in sorted(counts.get(f"{who}_matches", {}).items()):
            details.append({"kind": f"{who}_matched_train_class", "train_class_size": bucket, "patients": patients,
                            "share": patients / max(1, counts[f"n_{who}"])})
    has_hold = "n_holdout" in counts and counts["n_holdout"] > 0
    notes = [f"quasi-identifiers: {', '.join(columns)} (patient table; all patients, no sampling)",
             "generalised as ARX / sdcMicro would: " + ("; ".join(gen_notes) if gen_notes else "nothing to generalise")]
    if not has_hold:
        notes.append("no holdout given: the baseline (fresh patients matched against the training data) is unknown")
    out = []
    for name, key, what in ((SMALL, "small", f"a training class of fewer than {k} patients"),
                            (UNIQUE, "unique", "exactly one training patient")):
        value = counts[f"synthetic_{key}"] / n
        base = counts[f"holdout_{key}"] / counts["n_holdout"] if has_hold else None
        row = {"kind": "rates", "attack_rate": value, "baseline_rate": base, "n_synthetic": n,
               "n_holdout": counts.get("n_holdout"), "n_train": counts["n_train"], "k": k}
        out.append(MetricResult(
            name=name, family="privacy", value=value, goal="minimize",
            ci=wilson_interval(counts[f"synthetic_{key}"], n, confidence=confidence), n=n,
            details=(row, *details),
            notes=(*notes, f"share of synthetic patients whose quasi-identifiers match {what}; baseline: the same "
                           "share for holdout patients"),
            seed=ctx.options.seed,
        ))
    return out
