"""The ``synthmed`` command: thin wrappers over the packages, every failure one clear message."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from data_schemas.errors import SchemaError, UnknownSchemaError
from data_schemas.io import builtin_names, builtin_path, load_schema, schema_to_yaml
from evaluate.errors import EvaluationError
from synth.errors import SynthError

app = typer.Typer(
    name="synthmed",
    help="Synthetic claims/EMR cohorts with measured fidelity and privacy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
schemas_app = typer.Typer(help="Built-in and inferred schemas.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
generators_app = typer.Typer(help="Registered generators.", no_args_is_help=True)
app.add_typer(generators_app, name="generators")
releases_app = typer.Typer(help="Releases in the store's catalog.", no_args_is_help=True)
app.add_typer(releases_app, name="releases")
audit_app = typer.Typer(help="Check the store's integrity; rebuild a lost catalog from the manifests.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

_WIDTH = None if sys.stdout.isatty() else 160  # rich assumes 80 columns when piped
# markup and emoji off: ids, values and messages come from users' data and are printed as they are;
# the few decorated lines opt in with markup=True and escape() every value they hold
out = Console(highlight=False, soft_wrap=True, width=_WIDTH, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH, markup=False, emoji=False)


def _print_json(text: str) -> None:
    """JSON on stdout, indented as rich's ``print_json`` does, written in one piece (rich renders it token by
    token: 0.7 s for an evaluation's details)."""
    out.file.write(json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n")
    out.file.flush()

# typer 0.2x vendors its own copy of click: usage errors and aborts may come from either copy
_TYPER_CLICK = sys.modules[typer.BadParameter.__module__]
_CLICK_ERRORS = (click.exceptions.ClickException, _TYPER_CLICK.ClickException)
_ABORTS = (click.exceptions.Abort, typer.Abort)

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

SchemaOpt = Annotated[str, typer.Option("--schema", "-s", help="Built-in schema name or path to a schema YAML.")]
StoreOpt = Annotated[
    Optional[Path], typer.Option("--store", help="Store folder (default: $SYNTHMED_STORE or ./synthmed-data).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
MaxTimeOpt = Annotated[
    Optional[float],
    typer.Option("--max-time", min=1, help="Seconds a neural generator (ctgan, tvae, par) may train: it stops after the epoch that passes it."),
]


def _with_max_time(params: dict, max_time: float | None) -> dict:
    """The generator parameters with ``max_time`` added when --max-time is given."""
    return {**params, "max_time": max_time} if max_time is not None else params
GeneratorOpt = Annotated[str, typer.Option("--generator", "-g", help="Registered generator name (see `synthmed generators list`).")]
ParamOpt = Annotated[
    Optional[list[str]],
    typer.Option("--param", "-p", help="Generator parameter KEY=VALUE (VALUE read as JSON when it parses), repeatable."),
]
SecretOpt = Annotated[
    Optional[Path], typer.Option("--secret-file", help="File holding the pseudonymisation key (else $SYNTHMED_SECRET).")
]

EpsilonOpt = Annotated[
    Optional[float],
    typer.Option("--epsilon", help="Privacy budget per patient of a differentially private generator (e.g. dp_mst)."),
]
DeltaOpt = Annotated[
    Optional[float],
    typer.Option("--delta", help="Delta of the (epsilon, delta) guarantee (default 1e-6)."),
]
EngineOpt = Annotated[
    str,
    typer.Option("--engine", help="Where the data-heavy SQL runs: duckdb (this process) or spark (master from "
                                  "$SYNTHMED_SPARK_MASTER, or spark-submit's; else local). With spark, --data may be table:<prefix>."),
]


def _params(items: list[str] | None) -> dict[str, object]:
    """KEY=VALUE pairs to a dict; values parsed as JSON when possible (epochs=5 -> 5)."""
    params: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def _progress(quiet: bool):
    """A progress callback printing steps to stderr, or None when quiet."""
    if quiet:
        return None
    return lambda message: err.print(f"[dim]…[/dim] {escape(str(message))}", markup=True)


def _optional_secret(secret_file: Path | None) -> bytes | None:
    from synth.errors import MissingSecretError
    from synth.pseudonymise import load_secret

    try:
        return load_secret(secret_file)
    except MissingSecretError:
        if secret_file is not None:
            raise
        return None


def _store(store: Path | None):
    from synth.release import Store
    from synth.store import resolve_store

    return Store(resolve_store(store), notify=lambda message: err.print(message))


@app.command()
def validate(
    data_dir: Annotated[Path, typer.Argument(help="Folder of CSV, CSV.GZ or Parquet files, a release folder, or a release id.")],
    schema: Annotated[
        Optional[str],
        typer.Option("--schema", "-s", help="Built-in schema name or path to a schema YAML (default for a release: the schema it carries)."),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    engine: EngineOpt = "duckdb",
    quiet: QuietOpt = False,
) -> None:
    """Check a data folder against a schema and report every problem found."""
    from synth.engine import connection
    from synth.load import read_dataset
    from synth.release import RELEASE_ID, folder_schema, is_release_folder

    if not data_dir.exists() and RELEASE_ID.fullmatch(str(data_dir)):
        from synth.errors import CatalogError

        st = _store(store)
        try:
            st.catalog.release(str(data_dir))
        except CatalogError as exc:
            raise CatalogError(f"{data_dir} is neither a folder nor a release id: {exc}") from None
        data_dir = st.release_dir(str(data_dir))
    hint = load_schema(schema) if schema is not None else None
    if hint is None or is_release_folder(data_dir):
        sch = folder_schema(data_dir, hint=hint)  # a release's own schema; a --schema must agree with it
    else:
        sch = hint
    con = connection(engine)
    try:
        _, report = read_dataset(sch, data_dir, con=con, progress=_progress(quiet or as_json))
    finally:
        con.close()
    if as_json:
        _print_json(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def _print_report(report: object) -> None:
    from synth.validation import ValidationReport

    assert isinstance(report, ValidationReport)
    status = "[green]valid[/green]" if report.ok else f"[red]{len(report.problems)} problem(s)[/red]"
    out.print(f"{escape(str(report.source))} against schema [bold]{escape(report.schema)}[/bold]: {status}", markup=True)
    table = RichTable("table", "rows", "files")
    for name, rows in report.rows.items():
        files = report.files.get(name, [])
        table.add_row(name, f"{rows:,}", ", ".join(files) if len(files) <= 3 else f"{len(files)} files")
    out.print(table)
    for note in report.notes:
        out.print(f"note: {note}")
    for problem in report.problems:
        out.print(f"[red]-[/red] {escape(problem.render())}", markup=True)


@schemas_app.command("list")
def schemas_list(as_json: JsonOpt = False) -> None:
    """List the built-in schemas."""
    rows = []
    for name in builtin_names():
        sch = load_schema(name)
        rows.append({"name": name, "tables": list(sch.tables), "patient_table": sch.patient.table, "description": sch.description})
    if as_json:
        _print_json(json.dumps(rows))
        return
    table = RichTable("name", "tables", "description")
    for row in rows:
        table.add_row(row["name"], str(len(row["tables"])), row["description"])
    out.print(table)


@schemas_app.command("show")
def schemas_show(name: Annotated[str, typer.Argument(help="Built-in schema name or YAML path.")], as_json: JsonOpt = False) -> None:
    """Print a schema (YAML, or JSON with --json)."""
    sch = load_schema(name)
    if as_json:
        _print_json(sch.model_dump_json())
        return
    text = builtin_path(name).read_text() if name in builtin_names() else schema_to_yaml(sch)
    out.print(text, markup=False)


@schemas_app.command("infer")
def schemas_infer(
    data_dir: Annotated[Path, typer.Argument(help="Folder of CSV, CSV.GZ or Parquet files.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the YAML here instead of stdout.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Schema name (default: the folder name).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Draft a schema for your own data folder; review it, then validate the folder with it."""
    from synth.infer import infer_schema_yaml

    text = infer_schema_yaml(data_dir, name=name, progress=_progress(quiet))
    if output is None:
        out.print(text, markup=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    err.print(f"wrote {output}; review the flagged identifiers, then run: synthmed validate --schema {output} {data_dir}")


@app.command()
def prepare(
    data_dir: Annotated[Path, typer.Argument(help="Folder of real data.")],
    schema: SchemaOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (data/, train/, holdout/, split.json).")],
    secret_file: Annotated[Optional[Path], typer.Option("--secret-file", help="File holding the pseudonymisation key (else $SYNTHMED_SECRET).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the patient split.")] = 0,
    holdout: Annotated[float, typer.Option(help="Share of patients held out.")] = 0.2,
    date_shift_days: Annotated[int, typer.Option(help="Shift each patient's dates by a keyed offset within +-N days.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Move a non-empty output folder aside (kept, renamed) instead of refusing.")] = False,
    engine: EngineOpt = "duckdb",
    quiet: QuietOpt = False,
) -> None:
    """Validate, pseudonymise direct identifiers and split patients into train and holdout."""
    from synth.engine import connection
    from synth.load import load_dataset
    from synth.prepare import check_output
    from synth.prepare import prepare as run_prepare
    from synth.pseudonymise import load_secret

    check_output(output, data_dir if data_dir.is_dir() else None, force=force)  # before any work
    secret = load_secret(secret_file)
    say = _progress(quiet)
    dataset = load_dataset(load_schema(schema), data_dir, con=connection(engine), progress=say)
    result = run_prepare(dataset, output, secret=secret, seed=seed, holdout_fraction=holdout, date_shift_days=date_shift_days,
                         force=force, progress=say)
    _print_prepared(result)


def _print_prepared(result: object) -> None:
    from synth.prepare import PreparedData

    assert isinstance(result, PreparedData)
    rec = result.split
    out.print(
        f"prepared {result.folder}: {rec.n_train:,} train / {rec.n_holdout:,} holdout patients "
        f"(seed {rec.seed}, holdout {rec.holdout_fraction:.0%})"
    )
    hashed = ", ".join(f"{t}.{c}" for t, cols in result.pseudonymisation.hashed.items() for c in cols) or "none"
    emptied = ", ".join(f"{t}.{c}" for t, cols in result.pseudonymisation.emptied.items() for c in cols) or "none"
    out.print(f"pseudonymised (HMAC-SHA256): {hashed}")
    out.print(f"emptied direct identifiers: {emptied}")
    if result.pseudonymisation.date_shift_days:
        out.print(f"dates shifted per patient within +-{result.pseudonymisation.date_shift_days} days")


@app.command()
def demo(
    patients: Annotated[int, typer.Option("--patients", "-n", help="Patients in the simulated population.", min=10)] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the simulation and the split.")] = 0,
    store: StoreOpt = None,
    releases: Annotated[bool, typer.Option("--releases/--no-releases", help="Fit the demo generators and write releases.")] = True,
    quiet: QuietOpt = False,
) -> None:
    """Run synthmed end to end on the built-in simulated kr_claims population."""
    from synthmed.demo import DEMO_GENERATORS, run_demo

    run_demo(
        patients=patients, seed=seed, store=store, console=None if quiet else err, out=out,
        generators=DEMO_GENERATORS if releases else (),
    )


@generators_app.command("list")
def generators_list(as_json: JsonOpt = False) -> None:
    """Every registered generator: family, differential privacy, description."""
    from synth.generators import describe_generators

    rows = describe_generators()
    if as_json:
        _print_json(json.dumps(rows))
        return
    table = RichTable("name", "family", "DP", "description")
    for row in rows:
        dp = "yes" if row["differentially_private"] else "no"
        desc = row["description"] + (" [unsafe: needs --allow-unsafe]" if row["unsafe"] else "")
        table.add_row(row["name"], row["family"], dp, desc)
    out.print(table)


@app.command()
def fit(
    data_dir: Annotated[Path, typer.Option("--data", help="Prepared folder (synthmed prepare) or raw data folder.")],
    schema: SchemaOpt,
    generator: GeneratorOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the fitted model (.pkl).")],
    param: ParamOpt = None,
    secret_file: SecretOpt = None,
    allow_unsafe: Annotated[bool, typer.Option("--allow-unsafe", help="Allow baselines that copy training records.")] = False,
    quiet: QuietOpt = False,
    epsilon: EpsilonOpt = None,
    delta: DeltaOpt = None,
    max_time: MaxTimeOpt = None,
) -> None:
    """Fit a generator on the train split of a data folder and save it."""
    from synth.engine.local import fit_input
    from synth.pipeline import make_generator, read_training_input

    sch = load_schema(schema)
    gen = make_generator(generator, _with_max_time(_params(param), max_time), allow_unsafe=allow_unsafe, epsilon=epsilon, delta=delta)
    say = _progress(quiet)
    data = read_training_input(sch, data_dir, secret=_optional_secret(secret_file), progress=say)
    gen.fit(fit_input(gen, data.train, progress=say), progress=say)  # a DP generator fits on bounded rows, as in release
    output.parent.mkdir(parents=True, exist_ok=True)
    gen.save(output)
    out.print(f"fitted {generator} on {data.split.n_train:,} patients; saved to {output}")


@app.command()
def sample(
    model: Annotated[Path, typer.Argument(help="A model saved by `synthmed fit`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for one Parquet file per table.")],
    patients: Annotated[int, typer.Option("--patients", "-n", min=1, help="Patients to sample.")] = 1000,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    quiet: QuietOpt = False,
) -> None:
    """Sample a synthetic cohort from a saved model into a folder (not registered: see `release`)."""
    from synth.generators import Generator

    from synth.spool import write_cohort

    gen = Generator.load(model)
    say = _progress(quiet)
    written = write_cohort(gen.schema_, gen.sample_batches(patients, seed=seed, progress=say), output, progress=say)
    counts = ", ".join(f"{t} {n:,}" for t, n in written.rows.items())
    out.print(f"sampled {patients:,} patients into {output}: {counts}")


@app.command()
def release(
    data_dir: Annotated[Path, typer.Option("--data", help="Prepared folder (synthmed prepare) or raw data folder.")],
    schema: SchemaOpt,
    generator: GeneratorOpt,
    patients: Annotated[Optional[int], typer.Option("--patients", "-n", min=1, help="Patients to sample (default: as many as train).")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    param: ParamOpt = None,
    secret_file: SecretOpt = None,
    allow_unsafe: Annotated[bool, typer.Option("--allow-unsafe", help="Allow baselines that copy training records.")] = False,
    store: StoreOpt = None,
    quiet: QuietOpt = False,
    epsilon: EpsilonOpt = None,
    delta: DeltaOpt = None,
    requested_by: Annotated[
        Optional[str],
        typer.Option("--requested-by", help="Who asks for this release (default: the OS user); that identity cannot approve it in the review app."),
    ] = None,
    max_time: MaxTimeOpt = None,
    engine: EngineOpt = "duckdb",
    keep_replicated_uniques: Annotated[
        bool,
        typer.Option(
            "--keep-replicated-uniques",
            help="Keep synthetic rows that copy a row unique in training (removed by default, with the patient's rows when "
            "the row is a patient's; never applied to differentially private generators).",
        ),
    ] = False,
) -> None:
    """Fit on the train split, sample a cohort, and register it as an immutable release."""
    from synth.pipeline import release as run_release

    info = run_release(
        load_schema(schema), data_dir, generator=generator, params=_with_max_time(_params(param), max_time), store=_store(store),
        n_patients=patients, seed=seed, secret=_optional_secret(secret_file), allow_unsafe=allow_unsafe,
        progress=_progress(quiet), epsilon=epsilon, delta=delta, requested_by=requested_by, engine=engine,
        remove_uniques=not keep_replicated_uniques,
    )
    rows = ", ".join(f"{t} {n:,}" for t, n in info.manifest["rows"].items())
    out.print(f"release {info.release_id}: {rows}")
    guard = info.manifest.get("replicated_uniques", {})
    if guard.get("applied"):
        removed = ", ".join(f"{t} {n:,}" for t, n in guard["removed_rows"].items())
        out.print(f"  removed as replicas of training-unique rows: {guard['removed_patients']:,} patient(s); rows {removed}")
        for warning in guard.get("warnings", []) if quiet else []:  # else already said through the progress lines
            err.print(f"warning: {warning}", markup=False)
    out.print(f"  {info.path}")


@releases_app.command("list")
def releases_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Releases in the catalog, newest first."""
    st = _store(store)
    st.check_catalog()
    rows = st.catalog.releases()
    if as_json:
        _print_json(json.dumps(rows, default=str))
        return
    if not rows:
        out.print(f"no releases in {st.root}: run `synthmed demo` or `synthmed release`")
        return
    table = RichTable("release", "schema", "generator", "patients", "created", "fidelity", "risk", "review")
    for r in rows:
        fid = "-" if r["fidelity"] is None else f"{r['fidelity']:.3f}"
        table.add_row(r["release_id"], r["schema_name"], r["generator"], f"{r['n_patients']:,}", str(r["created_at"])[:19], fid, r["risk_level"] or "-", r["review_status"] or "-")
    out.print(table)


@releases_app.command("show")
def releases_show(release_id: Annotated[str, typer.Argument(help="Release id.")], store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """A release's manifest and catalog entry."""
    from synth.release import read_manifest

    st = _store(store)
    row = st.catalog.release(release_id)
    manifest = read_manifest(st, release_id)
    if as_json:
        _print_json(json.dumps({"catalog": row, "manifest": manifest}, default=str))
        return
    # where the files are now (a store copied or moved elsewhere); the catalog's row keeps the path at registration
    out.print(f"[bold]{escape(release_id)}[/bold]  ({escape(str(st.release_dir(release_id)))})", markup=True)
    out.print(f"schema {manifest['schema']['name']} ({manifest['schema']['hash'][:12]}), generator {manifest['generator']['name']} {json.dumps(manifest['generator']['params'], default=str)}")
    out.print(f"seed {manifest['seed']}, {manifest['n_patients']:,} patients, created {manifest['created_at']}")
    out.print("rows: " + ", ".join(f"{t} {n:,}" for t, n in manifest["rows"].items()))
    split = manifest["source"]["split"]
    out.print(f"split seed {split['seed']}, holdout fraction {split['holdout_fraction']:g} (split sizes and fingerprints are private)")
    if manifest["generator"].get("epsilon") is not None:
        out.print(f"differentially private: epsilon {manifest['generator']['epsilon']}, delta {manifest['generator'].get('delta')}")
    fixes = {k: v for k, v in manifest.get("sample_report", {}).get("rules", {}).items() if v.get("violations")}
    if fixes:
        out.print("rule repairs: " + ", ".join(f"{k} {v['violations']} found/{v['resampled']} resampled/{v['dropped']} dropped" for k, v in fixes.items()))


@releases_app.command("verify")
def releases_verify(release_id: Annotated[str, typer.Argument(help="Release id.")], store: StoreOpt = None) -> None:
    """Check a release: files against the manifest, manifest against the catalog row, and the catalog's hash chain."""
    from synth.release import verify_release

    result = verify_release(_store(store), release_id)
    if result.ok:
        out.print(f"release {release_id}: all files match the manifest, the manifest matches the catalog row")
        if result.chain is not None:
            out.print(result.chain.summary)
        return
    err.print(f"release {release_id} FAILED verification:", markup=False)
    for problem in result.problems:
        err.print(f"  - {problem}", markup=False)
    raise typer.Exit(EXIT_INVALID)


@audit_app.command("verify")
def audit_verify(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Check the whole store: the catalog's hash chain and signed head, every release, unregistered folders."""
    from synth.audit import verify_store

    result = verify_store(_store(store))
    if as_json:
        _print_json(json.dumps({
            "store": str(result.store), "ok": result.ok, "releases": result.releases, "problems": result.problems,
            "notes": result.notes, "chain": None if result.chain is None else {
                "ok": result.chain.ok, "entries": result.chain.entries, "head": result.chain.head},
        }))
    else:
        for note in result.notes:
            out.print(f"note: {note}")
        if result.ok:
            chain = result.chain.summary if result.chain is not None else "no catalog"
            out.print(f"store {result.store}: {result.releases} release(s) verified; {chain}")
        else:
            err.print(f"store {result.store} FAILED verification ({len(result.problems)} problem(s)):")
            for problem in result.problems:
                err.print(f"  - {problem}")
    if not result.ok:
        raise typer.Exit(EXIT_INVALID)


@audit_app.command("rebuild")
def audit_rebuild(store: StoreOpt = None) -> None:
    """Make a new catalog from the release manifests when it is missing or has no chain (the old file is kept)."""
    from synth.audit import rebuild_catalog

    st = _store(store)
    done = rebuild_catalog(st)
    for path in done.kept:
        out.print(f"kept the old file as {path}")
    out.print(f"registered {len(done.registered)} release(s) from their manifests in {st.catalog.path}")
    for name, problems in done.skipped.items():
        out.print(f"not registered: releases/{name}: {'; '.join(problems)}")
    if done.kept:
        out.print("evaluations and reviews of the old catalog were not carried over (they could not be verified): "
                  "evaluate the releases again with `synthmed evaluate RELEASE_ID --data DIR`")


def _debug() -> bool:
    return os.environ.get("SYNTHMED_DEBUG", "") not in ("", "0")


MetricsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--metrics", "-m", help="Metrics or families to run (fidelity, privacy.mia, utility.tstr...); repeatable or comma-separated. Default: all."),
]


def _metric_progress(quiet: bool):
    """A per-metric progress line on stderr, or None when quiet."""
    if quiet:
        return None
    return lambda spec, i, n: err.print(f"[dim]… \\[{i + 1}/{n}][/dim] {escape(spec.name)}", markup=True)


@app.command()
def evaluate(
    release_id: Annotated[Optional[str], typer.Argument(help="Release id (see `synthmed releases list`).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data", help="The data the release was fitted on (prepared or raw folder).")] = None,
    schema: Annotated[Optional[str], typer.Option("--schema", "-s", help="Schema of --real/--synthetic folders. A release carries its own: a --schema given with RELEASE_ID must be the same one.")] = None,
    real: Annotated[Optional[Path], typer.Option("--real", help="Real training data folder (folder mode).")] = None,
    synthetic: Annotated[Optional[Path], typer.Option("--synthetic", help="Synthetic data folder made by any tool (folder mode).")] = None,
    holdout: Annotated[Optional[Path], typer.Option("--holdout", help="Real holdout folder, never seen by the generator (folder mode).")] = None,
    metrics: MetricsOpt = None,
    target: Annotated[Optional[str], typer.Option("--target", help="TABLE.COLUMN the utility metrics predict.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of samples, attacks and bootstraps (default: the release's seed, else 0).")] = None,
    max_rows: Annotated[int, typer.Option("--max-rows", min=10, help="Patients/rows per side for row-level work (attacks, detection, utility).")] = 20_000,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Risk policy YAML (default: the built-in policy).")] = None,
    shadow_models: Annotated[int, typer.Option("--shadow-models", min=0, help="Shadow generators the shadow-model attack may fit (0 skips it).")] = 8,
    shadow_targets: Annotated[int, typer.Option("--shadow-targets", min=10, help="Targets per class of the shadow-model attack.")] = 1000,
    audit: Annotated[Optional[str], typer.Option("--audit", help="'canaries': also run the one-run epsilon audit (inserts canary patients, refits the generator).")] = None,
    canaries: Annotated[int, typer.Option("--canaries", min=2, help="Canary patients of --audit canaries.")] = 100,
    secret_file: SecretOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    engine: EngineOpt = "duckdb",
) -> None:
    """Score a release (stored in the catalog) or folders from any tool: fidelity, utility, privacy and the policy verdict."""
    from evaluate.context import EvalOptions
    from synthmed.evaluation import ShadowBudget, evaluate_folders, evaluate_release

    selected = [m.strip() for item in metrics or [] for m in item.split(",") if m.strip()] or None
    folder_mode = real is not None or synthetic is not None
    if release_id is not None and folder_mode:
        raise typer.BadParameter("give either RELEASE_ID --data DIR, or --schema --real --synthetic [--holdout], not both")
    if release_id is None and not folder_mode:
        raise typer.BadParameter("give RELEASE_ID --data DIR to evaluate a release, or --schema S --real DIR --synthetic DIR")
    params: dict[str, dict[str, object]] = {}
    if audit is not None and audit != "canaries":
        raise typer.BadParameter(f"the only audit is 'canaries'; got {audit!r}", param_hint="--audit")
    if audit is not None and release_id is None:
        raise typer.BadParameter("the canary audit refits a release's generator: give RELEASE_ID --data DIR", param_hint="--audit")
    if release_id is not None:
        if data_dir is None:
            raise typer.BadParameter("evaluating a release needs --data, the data it was fitted on", param_hint="--data")
        st = _store(store)
        release_seed = seed if seed is not None else int(st.catalog.release(release_id)["seed"] or 0)
        options = EvalOptions(seed=release_seed, target=target, max_rows=max_rows, params=params)
        outcome = evaluate_release(
            st, release_id, data_dir, secret=_optional_secret(secret_file), options=options, metrics=selected,
            policy=policy, shadow=ShadowBudget(shadow_models, shadow_targets), progress=_metric_progress(quiet or as_json),
            schema_hint=load_schema(schema) if schema is not None else None, canaries=canaries if audit else 0, engine=engine,
            say=_progress(quiet or as_json),
        )
    else:
        if schema is None or real is None or synthetic is None:
            missing = [o for o, v in (("--schema", schema), ("--real", real), ("--synthetic", synthetic)) if v is None]
            raise typer.BadParameter(f"folder mode needs {', '.join(missing)}")
        options = EvalOptions(seed=seed or 0, target=target, max_rows=max_rows, params=params)
        outcome = evaluate_folders(
            load_schema(schema), real, synthetic, holdout, options=options, metrics=selected, policy=policy,
            progress=_metric_progress(quiet or as_json), engine=engine, say=_progress(quiet or as_json),
        )
    if as_json:
        _print_json(json.dumps(outcome.to_dict(), default=str))
        return
    _print_scorecard(outcome)
    if outcome.evaluation_id:
        out.print(f"stored evaluation {outcome.evaluation_id} of release {outcome.release_id}")


def _print_scorecard(outcome: object, title: str | None = None) -> None:
    from synthmed.evaluation import EvaluationOutcome, scorecard

    assert isinstance(outcome, EvaluationOutcome)
    table = RichTable(title or (f"release {outcome.release_id}" if outcome.release_id else "evaluation"), "value", "95% CI", "verdict")
    for row in scorecard(outcome):
        table.add_row(row.label, row.value, row.ci, row.verdict)
    out.print(table)
    colour = {"low": "green", "medium": "yellow", "high": "red"}[outcome.risk_level]
    out.print(f"overall risk [{colour}]{escape(outcome.risk_level)}[/{colour}] (policy {escape(str(outcome.verdict.policy))})", markup=True)
    for reason in outcome.verdict.reasons[:5]:
        out.print(f"  - {reason}", markup=False)
    if len(outcome.verdict.reasons) > 5:
        out.print(f"  ... and {len(outcome.verdict.reasons) - 5} more (see --json)")


@app.command()
def report(
    release_id: Annotated[str, typer.Argument(help="Release id with a stored evaluation.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    store: StoreOpt = None,
) -> None:
    """Write a standalone HTML report of a release's latest evaluation (aggregates only)."""
    from synthmed.evaluation import write_report

    path = write_report(_store(store), release_id, output)
    out.print(f"wrote {path}")


@app.command(name="app")
def app_command(
    store: StoreOpt = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve the app on.")] = 8501,
    address: Annotated[str, typer.Option("--address", help="Address to bind; anything but localhost needs sign-in (--auth).")] = "localhost",
    auth: Annotated[
        Optional[Path],
        typer.Option("--auth", help="TOML file with Streamlit's [auth] section for the hospital's identity provider "
                                    "(else $SYNTHMED_AUTH, else .streamlit/secrets.toml). Without it: read-only, localhost only."),
    ] = None,
    allowed_host: Annotated[
        Optional[list[str]],
        typer.Option("--allowed-host", help="Another host name browsers use to reach the app (e.g. behind a proxy), repeatable."),
    ] = None,
) -> None:
    """Open the review app on the store: compare releases, read their risks, approve or reject (Streamlit, headless)."""
    from synthmed.review_app.launch import plan

    root = _store(store).root
    serve = plan(root, port=port, address=address, auth_file=auth, extra_hosts=allowed_host or ())
    err.print(f"review app for store {root.absolute()} on http://{address}:{port} (Ctrl+C stops it)", markup=False)
    if serve.sign_in is None:
        err.print("sign-in is not configured, so the app is read-only: see the README, 'Sign-in', to let reviewers decide",
                  markup=False)
    else:
        err.print(f"sign-in with provider {serve.sign_in.provider!r} ({serve.auth_file}); "
                  f"answers to host names {', '.join(serve.hosts)}", markup=False)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(serve.argv[0], serve.argv, serve.env)

def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every failure into one message and a non-zero exit."""
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except _ABORTS:
        err.print("aborted")
        sys.exit(130)
    except _CLICK_ERRORS as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except (SchemaError, UnknownSchemaError, SynthError, EvaluationError, ValueError) as exc:
        from synth.errors import DataValidationError

        if isinstance(exc, DataValidationError):
            err.print("error: the data does not conform to the schema", markup=False)
            for line in exc.report.render().splitlines():
                err.print(line, markup=False)
            sys.exit(EXIT_INVALID)
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the one boundary where an unexpected failure becomes a message
        if _debug():
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {exc} (set SYNTHMED_DEBUG=1 for the traceback)", markup=False
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
