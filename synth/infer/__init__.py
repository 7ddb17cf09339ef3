"""Drafting a schema for a data folder: tables, column types, keys, the tree, and privacy tags.

``synthmed schemas infer DATA_DIR`` runs :func:`draft_schema`. The steps, one module each:

1. :mod:`~synth.infer.files`: files whose names differ only in digits form one table; every file is read
   the way :func:`synth.load.read_dataset` reads it (CSV as text, Parquet native);
2. :mod:`~synth.infer.columns`: column types guessed from the first ``sample_rows`` rows of each file,
   then checked on every row and weakened where a row disagrees; code vocabularies; column groups;
3. :mod:`~synth.infer.keys`: primary keys on all rows, and which table owns an id held by several;
4. :mod:`~synth.infer.tree`: foreign keys (to unique keys only, by containment on all rows), the patient
   table, reference tables and dictionaries, and each table's tree link (patient -> admission -> event);
5. :mod:`~synth.infer.privacy`: direct identifiers, quasi-identifiers and sensitive columns from names,
   the table's role and, for names, the values;
6. :mod:`~synth.infer.assemble`: the draft is loaded with the loader itself; any problem left weakens the
   draft until the folder validates with none; the YAML gets a header for the reviewer.

The result is a draft for a person to review, not a finished schema: it knows only the rows it saw.
"""
from __future__ import annotations

from synth.infer.assemble import Draft
from synth.infer.draft import draft_schema, infer_schema, infer_schema_yaml
from synth.infer.parts import Flag

__all__ = ["Draft", "Flag", "draft_schema", "infer_schema", "infer_schema_yaml"]
