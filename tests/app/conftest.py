"""A small evaluated store for the review app, built once per session, with its real data deleted afterwards.

Three releases of a 300-patient simulated kr_claims population: an ``independent`` one that is never
evaluated (made first, so the newest two are the evaluated ones), then ``independent`` (requested by
``CREATOR_EMAIL``) and ``copy`` (training patients as they are: the high-risk case), each evaluated with a subset of the metrics
(column shapes, pair trends, rule violations, exact copies, DCR, two membership attacks, the three
Anonymeter-style risks, k-anonymity) and judged by the default policy, as ``synthmed evaluate`` does.
The real and prepared folders are removed once the store is built: the app never reads them.
"""
from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synth.release import Store

REPO = Path(__file__).resolve().parents[2]
SECRET = b"test-secret-key-0123456789abcdef"
CREATOR_EMAIL = "alice@hospital.example"  # requested the `independent` release
METRICS = [
    "fidelity.column_shapes", "fidelity.column_pair_trends", "fidelity.rule_violations", "privacy.exact_copies",
    "privacy.dcr", "privacy.mia.distance", "privacy.mia.domias", "privacy.singling_out", "privacy.linkability",
    "privacy.attribute_inference", "privacy.k_anonymity",
]


@dataclass(frozen=True)
class AppStore:
    """The built store, the folder its real data was in (deleted) and the ids of its releases."""

    root: Path
    real_dir: Path
    unevaluated: str
    independent: str
    copy: str

    @property
    def evaluated(self) -> list[str]:
        return [self.copy, self.independent]


def _evaluate(store: Store, release_id: str, prepared: Path) -> None:
    from scipy.optimize import OptimizeWarning

    from data_schemas.io import load_schema
    from evaluate.context import EvalOptions, load_context
    from evaluate.fidelity.summary import overall_fidelity
    from evaluate.policy import apply_policy, load_policy
    from evaluate.runner import run_metrics

    schema = load_schema("kr_claims")
    ctx = load_context(schema, prepared / "train", store.release_dir(release_id), prepared / "holdout",
                       options=EvalOptions(seed=0))
    try:
        with warnings.catch_warnings():
            # the singling-out control correction fits a curve that may not converge on 240 patients
            warnings.simplefilter("ignore", OptimizeWarning)
            evaluation = run_metrics(ctx, METRICS)
    finally:
        ctx.con.close()
    verdict = apply_policy(evaluation, load_policy())
    store.catalog.add_evaluation(
        release_id, results=[r.to_dict() for r in evaluation.results], seed=evaluation.seed,
        versions=evaluation.versions, summary={"metrics": METRICS}, fidelity=overall_fidelity(evaluation),
        risk_level=verdict.risk_level, policy=verdict.to_dict(),
    )


@pytest.fixture(scope="session")
def app_store(tmp_path_factory: pytest.TempPathFactory) -> AppStore:
    import pyarrow.parquet as pq

    from data_schemas.io import load_schema
    from synth.demo_population import simulate
    from synth.load import load_dataset
    from synth.pipeline import release
    from synth.prepare import prepare

    base = tmp_path_factory.mktemp("app")
    real = base / "real"
    raw = real / "raw"
    raw.mkdir(parents=True)
    for name, table in simulate(300, seed=7).items():
        pq.write_table(table, raw / f"{name}.parquet")
    schema = load_schema("kr_claims")
    prepared = real / "prepared"
    prepare(load_dataset(schema, raw), prepared, secret=SECRET, seed=0)
    store = Store(base / "store")
    kw = {"store": store, "n_patients": 120}
    unevaluated = release(schema, prepared, generator="independent", seed=2, **kw).release_id
    independent = release(schema, prepared, generator="independent", seed=1, requested_by=CREATOR_EMAIL, **kw).release_id
    copy = release(schema, prepared, generator="copy", seed=1, allow_unsafe=True, **kw).release_id
    for rid in (independent, copy):
        _evaluate(store, rid, prepared)
    shutil.rmtree(real)
    return AppStore(store.root, real, unevaluated, independent, copy)


@pytest.fixture()
def store_copy(app_store: AppStore, tmp_path: Path) -> Store:
    """A private copy of the store, for tests that write reviews or break files."""
    shutil.copytree(app_store.root, tmp_path / "store")
    return Store(tmp_path / "store")


@pytest.fixture()
def use_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Point the app at a store folder: ``use_store(path)``."""

    def point(path: Path) -> None:
        monkeypatch.setenv("SYNTHMED_STORE", str(path))

    yield point


ISSUER = "https://idp.hospital.example/realms/hospital"


def claims(sub: str, *, name: str | None = None, email: str | None = None, groups: list[str] | None = None,
           issuer: str = ISSUER) -> dict:
    """What ``st.user`` holds for a signed-in person (the ID token's claims)."""
    out: dict = {"is_logged_in": True, "iss": issuer, "sub": sub, "email": email or f"{sub}@hospital.example",
                 "iat": int(time.time())}
    if name:
        out["name"] = name
    if groups is not None:
        out["groups"] = groups
    return out


AUTH_SECTION = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret-of-forty-characters!",
    "client_id": "synthmed",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "http://localhost:9400/.well-known/openid-configuration",
}


def write_review_config(store: Store, *, groups: tuple[str, ...] = ("synthmed-reviewers",),
                        named: tuple[tuple[str, str], ...] = (), approvals_required: int = 1) -> None:
    """The store's review.toml: reviewer groups, named reviewers (issuer, subject), approvals required."""
    lines = ["[review]", f"approvals_required = {approvals_required}",
             "reviewer_groups = [" + ", ".join(f'"{g}"' for g in groups) + "]"]
    for issuer, subject in named:
        lines += ["", "[[review.reviewers]]", f'issuer = "{issuer}"', f'subject = "{subject}"']
    (store.root / "review.toml").write_text("\n".join(lines) + "\n")
