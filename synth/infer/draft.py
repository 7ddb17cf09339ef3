"""``draft_schema``: the steps of inference in order, with progress for long folders."""
from __future__ import annotations

import time
from pathlib import Path

from synth.infer.assemble import Draft, verified
from synth.infer.columns import find_groups, infer_types
from synth.infer.files import file_groups, stage_group
from synth.infer.keys import find_primary_key, id_owners, unique_ids
from synth.infer.parts import Progress, slug
from synth.infer.privacy import flag_privacy, still_flagged
from synth.infer.tree import Structure
from synth.load import connect


def _schema_name(folder: Path) -> str:
    """The folder's name as a plain identifier (``1-sample-10000`` -> ``data_1_sample_10000``)."""
    name = slug(folder.resolve().name) or "inferred"
    return f"data_{name}" if name[0].isdigit() else name


def infer_schema(data_dir: str | Path, *, name: str | None = None, sample_rows: int = 100_000,
                 progress: Progress | None = None):  # noqa: ANN201 (a Schema; typed in draft_schema)
    """Draft a schema for a folder of CSV / CSV.GZ / Parquet files; the draft validates that folder."""
    return draft_schema(data_dir, name=name, sample_rows=sample_rows, progress=progress).schema


def infer_schema_yaml(data_dir: str | Path, name: str | None = None, *, sample_rows: int = 100_000,
                      progress: Progress | None = None) -> str:
    """The drafted schema as YAML with a header comment: it is a draft, what was flagged and why."""
    return draft_schema(data_dir, name=name, sample_rows=sample_rows, progress=progress).to_yaml()


def draft_schema(data_dir: str | Path, *, name: str | None = None, sample_rows: int = 100_000,
                 progress: Progress | None = None) -> Draft:
    """Draft a schema for ``data_dir`` with its privacy flags and review notes (see :mod:`synth.infer`).

    ``progress``, when given, receives one line per step (with the seconds elapsed), so that a folder of
    millions of rows shows where the time goes.
    """
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
        raise ValueError(
            f"The 'sample_rows' parameter of infer_schema must be an int >= 1; got {sample_rows!r} instead."
        )
    start = time.perf_counter()

    def say(message: str) -> None:
        if progress is not None:
            progress(f"[{time.perf_counter() - start:5.1f} s] {message}")

    folder = Path(data_dir)
    groups = file_groups(folder)
    say(f"{sum(len(g.files) for g in groups)} file(s) in {folder}, read as {len(groups)} table(s)")
    con = connect(read_dirs=[folder])
    try:
        tables = []
        for i, g in enumerate(groups, start=1):
            tables.append(stage_group(con, folder, g, i - 1))
            say(f"read {g.table}: {tables[-1].rows:,} rows, {len(tables[-1].columns)} columns ({i}/{len(groups)})")
        for i, t in enumerate(tables, start=1):
            infer_types(con, t, sample_rows)
            say(f"column types of {t.name} ({i}/{len(tables)})")
        structure = Structure(tables, say=say)
        uniques = {t.name: unique_ids(con, t) for t in tables}
        owners = id_owners(con, uniques, structure.tables, structure.notes)
        for t in tables:
            find_primary_key(con, t, uniques[t.name], [u.name for u in tables if u is not t], owners)
        say("primary keys: " + ", ".join(f"{t.name}({', '.join(t.primary_key) or '-'})" for t in tables))
        structure.find_foreign_keys(con, owners)
        structure.choose_patient()
        structure.settle_references()
        structure.keep_dictionary_codes()
        structure.choose_tree_links(con)
        structure.settle_references()
        say(f"patient table {structure.patient[0]}.{structure.patient[1]}; tree links chosen")  # type: ignore[index]
        for t in tables:
            find_groups(con, t)
        flags = flag_privacy(con, structure)
        say(f"privacy tags: {len(flags)} flag(s)")
        draft_name = name or _schema_name(folder)
        schema = verified(con, folder, structure, draft_name, say)
        flags = [f for f in flags if still_flagged(schema, f)]
        say("draft ready")
    finally:
        con.close()
    return Draft(schema=schema, flags=tuple(flags), notes=tuple(structure.notes), source=str(folder),
                 rows={t.name: t.rows for t in tables})
