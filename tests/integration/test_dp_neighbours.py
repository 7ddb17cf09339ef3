"""Neighbour tests of a DP release: nothing published may move with one patient except through the accountant.

D is a raw input folder (train and holdout are split from it), D' the same folder without one patient
and all of their rows. Releases are made twice on D and once on D'. A published field (anything in
manifest.json, the catalog's releases row, ``releases list/show [--json]``, the HTML report's release
text and what the review app's data layer returns) that comes out identical from the two D runs is
deterministic given D; if it then differs on D', it is a function of that one patient outside the
accountant: a leak. A saved model (``synthmed fit``) is held to the same test, field by field.

A field of the DP output itself (row counts of the sample, the noisy release size...) varies between
the two D runs and is not compared. A low-entropy DP field may coincide twice by chance: a field that
looks like a leak is confirmed on more runs of both D and D' (at most ``MAX_CONFIRM`` more each); a
deterministic leak stays constant on every run, a noisy field does not.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from data_schemas.io import load_schema
from evaluate.report import render_report
from evaluate.result import EvaluationResult
from synth.generators import get_generator
from synth.generators.base import Generator
from synth.pipeline import read_training_input, release
from synth.release import Store
from tests.conftest import SECRET

KR = load_schema("kr_claims")
MAX_CONFIRM = 4
ABSENT = "<absent>"
Path_ = tuple[str, ...]


def _write(frames: dict[str, pa.Table], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, table in frames.items():
        pq.write_table(table, folder / f"{name}.parquet")
    return folder


def _without(frames: dict[str, pa.Table], patient: str) -> dict[str, pa.Table]:
    """The population without one patient and every row below them."""
    claims = frames["claims"]
    mine = pc.equal(claims.column("patient_id"), patient)
    claim_ids = claims.filter(mine).column("claim_id").combine_chunks()
    out = {}
    for name, table in frames.items():
        if name == "patients":
            out[name] = table.filter(pc.invert(pc.equal(table.column("patient_id"), patient)))
        elif name == "claims":
            out[name] = table.filter(pc.invert(mine))
        else:
            out[name] = table.filter(pc.invert(pc.is_in(table.column("claim_id"), value_set=claim_ids)))
    return out


def _with_heavy_claims(frames: dict[str, pa.Table], patient: str, n_rows: int) -> dict[str, pa.Table]:
    """``patient`` gets ``n_rows`` more claims: copies of their own first claim (valid under every rule)."""
    claims = frames["claims"]
    first = claims.filter(pc.equal(claims.column("patient_id"), patient)).slice(0, 1)
    copies = pa.concat_tables([first] * n_rows)
    ids = pa.array([f"HEAVY{i:06d}" for i in range(n_rows)], type=claims.schema.field("claim_id").type)
    copies = copies.set_column(copies.schema.get_field_index("claim_id"), claims.schema.field("claim_id"), ids)
    return {**frames, "claims": pa.concat_tables([claims, copies])}


def _train_patient(frames: dict[str, pa.Table], tmp: Path, *, most_claims: bool = True, holdout: bool = False) -> str:
    """A patient the split puts in train (or in the holdout), preferring those with the most (or fewest) claims."""
    tmp.mkdir(parents=True, exist_ok=True)
    counts = frames["claims"].group_by("patient_id").aggregate([("claim_id", "count")]).sort_by(
        [("claim_id_count", "descending" if most_claims else "ascending")])
    n_train_d = read_training_input(KR, _write(frames, tmp / "probe-d"), secret=SECRET.encode()).split.n_train
    for i, patient in enumerate(counts.column("patient_id").to_pylist()[:40]):
        folder = _write(_without(frames, patient), tmp / f"probe-{i}")
        in_train = read_training_input(KR, folder, secret=SECRET.encode()).split.n_train == n_train_d - 1
        if in_train != holdout:
            return patient
    raise AssertionError("no patient found on the wanted side of the split")


def _flatten(value: Any, prefix: Path_ = ()) -> dict[Path_, Any]:
    if isinstance(value, dict):
        out: dict[Path_, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, (*prefix, str(k))))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, (*prefix, str(i))))
        return out
    return {prefix: value}


def _report_text(manifest: dict[str, Any]) -> dict[str, str]:
    """The HTML report's text about the release (no evaluation: its aggregates are outside the guarantee), by row."""
    html = render_report(EvaluationResult((), seed=0), title="release", manifest=manifest)
    rows = re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", html, flags=re.S)
    rest = re.sub(r"<tr><th>.*?</th><td>.*?</td></tr>", "", html, flags=re.S)
    paragraphs = [re.sub(r"<[^>]+>", "", p) for p in re.findall(r"<p[^>]*>(.*?)</p>", rest, flags=re.S)]
    return {**{f"row {k}": v for k, v in rows}, **{f"paragraph {i}": p for i, p in enumerate(paragraphs)}}


def published(store: Store, release_id: str) -> dict[Path_, Any]:
    """Every field published about a release, as path -> value."""
    from synthmed.cli import app
    from synthmed.review_app import data

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "--store", str(store.root)])
        assert result.exit_code == 0, result.output
        return result.stdout

    manifest = json.loads((store.release_dir(release_id) / "manifest.json").read_text())
    listed = cli("releases", "show", release_id, "--json")
    shown = cli("releases", "show", release_id)
    (row,) = json.loads(cli("releases", "list", "--json"))  # the store holds this one release
    table = cli("releases", "list")
    frame = data.releases_frame(store)
    app_row = frame[frame["release_id"] == release_id].iloc[0].to_dict()
    return {
        **_flatten(manifest, ("manifest",)),
        **_flatten(store.catalog.release(release_id), ("catalog",)),
        **_flatten(json.loads(listed), ("releases show --json",)),
        **{("releases show", str(i)): line for i, line in enumerate(shown.splitlines())},
        **_flatten(row, ("releases list --json",)),
        **{("releases list", str(i)): line for i, line in enumerate(table.splitlines())},
        **_flatten(_report_text(manifest), ("report",)),
        **_flatten(data.manifest_summary(store, release_id), ("app", "manifest_summary")),
        **_flatten({k: str(v) for k, v in app_row.items()}, ("app", "releases_frame")),
    }


def _model_state(value: Any, prefix: Path_ = (), seen: set[int] | None = None) -> dict[Path_, Any]:
    """Every number, string and array a saved model holds, as path -> value (an array as its shape and hash)."""
    seen = set() if seen is None else seen
    if value is None or isinstance(value, (str, bytes, bool, int, float)):
        return {prefix: value}
    if isinstance(value, np.generic):
        return {prefix: value.item()}
    if isinstance(value, np.ndarray):
        return {prefix: (value.shape, value.dtype.str, hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest())}
    if id(value) in seen:
        return {}
    seen.add(id(value))
    if isinstance(value, dict):
        items = [(repr(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(value)]
    elif isinstance(value, (set, frozenset)):
        return {prefix: tuple(sorted(map(repr, value)))}
    elif hasattr(value, "__dict__"):
        items = list(vars(value).items())
    else:
        return {prefix: repr(value)}
    out: dict[Path_, Any] = {}
    for k, v in items:
        out.update(_model_state(v, (*prefix, str(k)), seen))
    return out


# every neighbour test runs dp_mst with a workload (the selection bonus) and child counts past the row cap
DP_PARAMS: dict[str, Any] = {"targets": ["claims.care_type"], "max_rows_per_patient": 4, "max_children": 40}
SAMPLED = "dp_mst fitted on a sample"  # epsilon 4, fit_patients 40: a Poisson sample of about a third of the training patients


def saved_model(folder: Path, generator: str, path: Path) -> dict[Path_, Any]:
    """Fit ``generator`` on the train side of ``folder``, save it as ``synthmed fit`` does, load it, list its state."""
    epsilon = {"epsilon": 1.0, **DP_PARAMS} if generator == "dp_mst" else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    get_generator(generator, **epsilon).fit(read_training_input(KR, folder, secret=SECRET.encode()).train).save(path)
    model = Generator.load(path)
    model.schema_ = None  # the schema is public (an input, like the parameters)
    return _model_state(model, ("model",))


class Runs:
    """What was published by the runs made so far per (input folder, generator); made on demand, reused."""

    def __init__(self, tmp: Path, make: Callable[[Path, str, Path], dict[Path_, Any]]) -> None:
        self.tmp = tmp
        self.make = make
        self.made: dict[tuple[Path, str], list[dict[Path_, Any]]] = {}

    def runs(self, folder: Path, generator: str, n: int) -> list[dict[Path_, Any]]:
        done = self.made.setdefault((folder, generator), [])
        while len(done) < n:
            done.append(self.make(folder, generator, self.tmp / f"{folder.name}-{generator}-{len(done)}"))
        return done[:n]


def released(folder: Path, generator: str, where: Path) -> dict[Path_, Any]:
    """Release ``generator`` on ``folder`` into a fresh store; every field published about it."""
    store = Store(where)
    name = "dp_mst" if generator == SAMPLED else generator
    epsilon = (4.0 if generator == SAMPLED else 1.0) if name == "dp_mst" else None
    params = {**DP_PARAMS, "fit_patients": 40} if generator == SAMPLED else DP_PARAMS if name == "dp_mst" else None
    info = release(KR, folder, generator=name, params=params, store=store, secret=SECRET.encode(), epsilon=epsilon, seed=3)
    return published(store, info.release_id)


def _constant(runs: list[dict[Path_, Any]]) -> dict[Path_, Any]:
    first = runs[0]
    return {k: v for k, v in first.items() if all(k in r and r[k] == v for r in runs[1:])}


def leaks(made: Runs, d: Path, d_prime: Path, generator: str = "dp_mst", *, confirm: int = MAX_CONFIRM) -> dict[Path_, tuple[Any, Any]]:
    """Fields constant over the D runs (two) and the D' runs (one) that differ between D and D' (the issue's test);
    a field found is confirmed on up to ``MAX_CONFIRM`` more runs of each, and kept only if it stays constant."""

    def flagged(n_d: int, n_p: int) -> dict[Path_, tuple[Any, Any]]:
        d_const, p_runs = _constant(made.runs(d, generator, n_d)), made.runs(d_prime, generator, n_p)
        out = {}
        for k, v in d_const.items():
            on_p = {repr(r.get(k, ABSENT)) for r in p_runs}
            if len(on_p) == 1 and p_runs[0].get(k, ABSENT) != v:  # constant on D' too, at another value
                out[k] = (v, p_runs[0].get(k, ABSENT))
        return out

    found = flagged(2, 1)
    for extra in range(1, confirm + 1):
        if not found:
            break
        found = flagged(2 + extra, 1 + extra)
    return found


def _message(found: dict[Path_, tuple[Any, Any]]) -> str:
    return "published fields that move with one patient:\n" + "\n".join(
        f"{' > '.join(k)}: {a!r} on D vs {b!r} on D'" for k, (a, b) in found.items())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, pa.Table], Path, Path, Runs]:
    """The population, a scratch folder, D written as a raw input folder, and the releases made so far."""
    from synth.demo_population import simulate

    tmp = tmp_path_factory.mktemp("neighbours")
    population = simulate(150, seed=21)
    return population, tmp, _write(population, tmp / "d"), Runs(tmp, released)


def test_removing_a_training_patient_moves_nothing_published(world) -> None:
    population, tmp, d, made = world
    patient = _train_patient(population, tmp / "probe-train")
    d_prime = _write(_without(population, patient), tmp / "d-minus-train-patient")
    found = leaks(made, d, d_prime)
    assert not found, _message(found)


def test_removing_a_holdout_patient_moves_nothing_published(world) -> None:
    """The whole input folder is covered: the holdout's sizes and fingerprints are not published either."""
    population, tmp, d, made = world
    patient = _train_patient(population, tmp / "probe-holdout", holdout=True)
    d_prime = _write(_without(population, patient), tmp / "d-minus-holdout-patient")
    found = leaks(made, d, d_prime)
    assert not found, _message(found)


def test_removing_a_patient_with_1000_claims_moves_nothing_published(world) -> None:
    population, tmp, _, made = world
    patient = _train_patient(population, tmp / "probe-heavy", most_claims=False)
    heavy = _with_heavy_claims(population, patient, 1000)
    d = _write(heavy, tmp / "d-heavy")
    d_prime = _write(_without(heavy, patient), tmp / "d-heavy-minus-patient")
    found = leaks(made, d, d_prime)
    assert not found, _message(found)


def test_a_fit_on_a_sample_of_patients_moves_nothing_published(world) -> None:
    """``fit_patients``: the sampling rate comes from a noisy count and is published; were it the exact count's,
    the rate (and the budget on the sample) would be constant on D and move on D'."""
    population, tmp, d, made = world
    patient = _train_patient(population, tmp / "probe-sampled")
    d_prime = _write(_without(population, patient), tmp / "d-minus-patient-sampled")
    found = leaks(made, d, d_prime, generator=SAMPLED)
    assert not found, _message(found)
    sample = ("manifest", "generator", "privacy_accounting", "fit_sample")
    runs = made.runs(d, SAMPLED, 2)
    assert all(r[(*sample, "fit_patients")] == 40 for r in runs)
    rates = [r[(*sample, "rate")] for r in runs]  # 40 over a count of ~120 plus noise of scale 25 (1 if it falls below 40)
    assert all(0 < x <= 1 for x in rates) and min(rates) < 1, rates
    assert all(r[("app", "manifest_summary", "fit_sample", "rate")] == x for r, x in zip(runs, rates))  # the reviewer sees it


def test_the_neighbour_test_catches_a_deterministic_leak(world) -> None:
    """The harness has power: a non-DP release (default size = the exact train size) is flagged."""
    population, tmp, d, made = world
    patient = _train_patient(population, tmp / "probe-power")
    d_prime = _write(_without(population, patient), tmp / "d-minus-patient-power")
    found = leaks(made, d, d_prime, generator="independent", confirm=1)
    assert ("manifest", "n_patients") in found and ("app", "releases_frame", "patients") in found
    # The sampled size is the train size exactly; the replicated-uniques guard then removes a few patients,
    # so the published n_patients moves by more than one and the one-patient step shows before the guard.
    before = ("manifest", "replicated_uniques", "patients_before")
    assert before in found, _message(found)
    assert found[before][0] == found[before][1] + 1


def test_a_saved_model_holds_nothing_that_moves_with_one_patient(world) -> None:
    """``synthmed fit``'s saved model, field by field (every number and array it holds), on D vs D minus the
    patient with 1,000 extra claims; the same harness flags a non-DP model (exact frequencies) at once."""
    population, tmp, _, _ = world
    patient = _train_patient(population, tmp / "probe-model", most_claims=False)
    heavy = _with_heavy_claims(population, patient, 1000)
    d = _write(heavy, tmp / "d-model")
    d_prime = _write(_without(heavy, patient), tmp / "d-model-minus-patient")
    models = Runs(tmp / "models", saved_model)
    found = leaks(models, d, d_prime)
    assert not found, _message(found)
    assert leaks(models, d, d_prime, generator="independent", confirm=1), "the harness found nothing in a non-DP model"


def test_the_chain_head_hides_the_private_record(world) -> None:
    """The signed head (`catalog.head`, `audit verify`, the app's review page) hashes the private record too: one
    who knows every field of that row (the exact counts, say) must still not be able to check a guess against the
    chain. The row's 128-bit random salt, never published, is what stops it; with the salt the guess checks out."""
    from synth.catalog import _entry_hash, _row_hash, canonical_row
    from synthmed.cli import app

    _, tmp, d, _ = world
    store = Store(tmp / "store-chain")
    info = release(KR, d, generator="independent", store=store, secret=SECRET.encode(), seed=3)
    private = store.catalog.release_source(info.release_id)
    assert private is not None and re.fullmatch(r"[0-9a-f]{32}", private["salt"])
    with store.catalog.connect(read_only=True) as con:
        ((row_hash, prev, entry),) = con.execute(
            "SELECT row_hash, prev_hash, entry_hash FROM chain WHERE table_name = 'release_sources'").fetchall()
    guess = {k: v for k, v in private.items() if k != "salt"}
    assert _row_hash(canonical_row(guess)) != row_hash and _entry_hash(prev, "release_sources", canonical_row(guess)) != entry
    assert _entry_hash(prev, "release_sources", canonical_row(private)) == entry  # the adversary's method is right
    verified = CliRunner().invoke(app, ["audit", "verify", "--json", "--store", str(store.root)])
    assert verified.exit_code == 0, verified.output
    fields = "\n".join(f"{k}={v}" for k, v in published(store, info.release_id).items())
    shown = fields + (store.root / "catalog.head").read_text() + verified.stdout
    assert private["salt"] not in shown and private["source_fingerprint"] not in shown
    assert json.loads(private["split_json"])["train_fingerprint"] not in shown
