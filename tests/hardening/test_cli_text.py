"""The CLI prints ids and values as they are: rich markup and emoji codes in data are never interpreted."""
from __future__ import annotations

from pathlib import Path

SCHEMA = """
name: mini
patient: {table: people, column: id}
tables:
  people:
    primary_key: id
    columns:
      id: {type: id}
      born: {type: datetime, unit: date}
"""


def test_markup_in_values_is_printed_literally(tmp_path: Path, cli) -> None:
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text('id,born\n1,[bold red]1950[/bold red] :x:\n2,[link=http://evil]x[/link]\n')
    code, out, err = cli("validate", "--schema", tmp_path / "schema.yaml", data)
    assert code == 1, err
    assert "[bold red]1950[/bold red] :x:" in out and "[link=http://evil]x[/link]" in out
    assert "\u274c" not in out  # :x: was not turned into an emoji


def test_markup_in_a_schema_error_is_printed_literally(tmp_path: Path, cli) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCHEMA.replace("born: {type: datetime, unit: date}", "'[b]x[/b]:smile:': {type: id}"))
    code, _, err = cli("schemas", "show", path)
    assert code == 2 and "[b]x[/b]:smile:" in err
