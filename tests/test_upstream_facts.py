"""docs/upstream-facts.md: every fact the machine relies on over months says where it was read."""

import re
from pathlib import Path

FACTS = Path(__file__).resolve().parents[1] / "docs" / "upstream-facts.md"
# A commit, or an explicit note of what was read instead (an indexed file by id, an installed tool).
WHERE_READ = re.compile(
    r"\b[0-9a-f]{7,40}\b|as indexed|file id \d+|not re-read at a commit|as installed here"
)


def _rows(title: str) -> list[list[str]]:
    text = FACTS.read_text()
    section = text[text.index(title) :]
    section = section[: section.index("\n## ", len(title))]
    rows = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith(("| fact", "| ---")):
            # `\|` is a pipe inside a cell (GitHub tables), not a cell boundary.
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_each_machine_lifecycle_fact_names_the_upstream_version_it_was_read_at() -> None:
    rows = _rows("## The machine over months (issue 17)")
    assert len(rows) >= 10
    for fact, source, encoded in rows:
        assert WHERE_READ.search(source), f"no commit (or 'as indexed') for: {fact[:80]}"
        assert encoded, f"no test named for: {fact[:80]}"


def test_machine_lifecycle_fact_rows_are_whole_table_rows() -> None:
    for row in _rows("## The machine over months (issue 17)"):
        assert len(row) == 3, f"a stray '|' splits this row into {len(row)} cells: {row[0][:80]}"
