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
from rich.table import Table as RichTable

from data_schemas.errors import SchemaError, UnknownSchemaError
from data_schemas.io import builtin_names, builtin_path, load_schema, schema_to_yaml
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

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

SchemaOpt = Annotated[str, typer.Option("--schema", "-s", help="Built-in schema name or path to a schema YAML.")]
StoreOpt = Annotated[
    Optional[Path], typer.Option("--store", help="Store folder (default: $SYNTHMED_STORE or ./synthmed-data).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


@app.command()
def validate(
    data_dir: Annotated[Path, typer.Argument(help="Folder of CSV, CSV.GZ or Parquet files.")],
    schema: SchemaOpt,
    as_json: JsonOpt = False,
) -> None:
    """Check a data folder against a schema and report every problem found."""
    from synth.load import read_dataset

    sch = load_schema(schema)
    _, report = read_dataset(sch, data_dir)
    if as_json:
        out.print_json(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def _print_report(report: object) -> None:
    from synth.validation import ValidationReport

    assert isinstance(report, ValidationReport)
    status = "[green]valid[/green]" if report.ok else f"[red]{len(report.problems)} problem(s)[/red]"
    out.print(f"{report.source} against schema [bold]{report.schema}[/bold]: {status}")
    table = RichTable("table", "rows", "files")
    for name, rows in report.rows.items():
        files = report.files.get(name, [])
        table.add_row(name, f"{rows:,}", ", ".join(files) if len(files) <= 3 else f"{len(files)} files")
    out.print(table)
    for note in report.notes:
        out.print(f"note: {note}")
    for problem in report.problems:
        out.print(f"[red]-[/red] {problem.render()}", markup=True)


@schemas_app.command("list")
def schemas_list(as_json: JsonOpt = False) -> None:
    """List the built-in schemas."""
    rows = []
    for name in builtin_names():
        sch = load_schema(name)
        rows.append({"name": name, "tables": list(sch.tables), "patient_table": sch.patient.table, "description": sch.description})
    if as_json:
        out.print_json(json.dumps(rows))
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
        out.print_json(sch.model_dump_json())
        return
    text = builtin_path(name).read_text() if name in builtin_names() else schema_to_yaml(sch)
    out.print(text, markup=False)


@schemas_app.command("infer")
def schemas_infer(
    data_dir: Annotated[Path, typer.Argument(help="Folder of CSV, CSV.GZ or Parquet files.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the YAML here instead of stdout.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Schema name (default: the folder name).")] = None,
) -> None:
    """Draft a schema for your own data folder; review it, then validate the folder with it."""
    from synth.infer import infer_schema_yaml

    text = infer_schema_yaml(data_dir, name=name)
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
) -> None:
    """Validate, pseudonymise direct identifiers and split patients into train and holdout."""
    from synth.load import load_dataset
    from synth.prepare import prepare as run_prepare
    from synth.pseudonymise import load_secret

    secret = load_secret(secret_file)
    dataset = load_dataset(load_schema(schema), data_dir)
    result = run_prepare(dataset, output, secret=secret, seed=seed, holdout_fraction=holdout, date_shift_days=date_shift_days)
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
    quiet: QuietOpt = False,
) -> None:
    """Run synthmed end to end on the built-in simulated kr_claims population."""
    from synthmed.demo import run_demo

    run_demo(patients=patients, seed=seed, store=store, console=None if quiet else err, out=out)


def _debug() -> bool:
    return os.environ.get("SYNTHMED_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every failure into one message and a non-zero exit."""
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except (SchemaError, UnknownSchemaError, SynthError, ValueError) as exc:
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
