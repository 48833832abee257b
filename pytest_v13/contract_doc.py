"""The documented contracts, read from ``docs/api_contracts.md`` (the seed asks that rows match
that document), so a check holds the stack's rows against the document, not against the code
that wrote them.

Each section ``## <kind> (`...`)`` has a table ``| `field` | type | meaning |``; a type is
``int``, ``float``, ``str``, ``bool``, a choice ``a \\| b``, or a container, each optionally
``\\| null``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FieldSpec", "contracts_doc", "parse_contracts", "row_problems", "sqlite_column_problems"]

DOC = Path("docs/api_contracts.md")

_SECTION = re.compile(r"^## (\w+) \(`\w+`\)\s*$")
_ROW = re.compile(r"^\| `(\w+)` \| (.+?) \| .*\|\s*$")
_SQL_AFFINITY = {"int": "INTEGER", "bool": "INTEGER", "float": "REAL", "str": "TEXT", "choice": "TEXT"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # int | float | str | bool | choice | container
    nullable: bool
    choices: frozenset[str] = frozenset()

    def problem(self, value: Any, *, sqlite: bool = False) -> str | None:
        """Why ``value`` breaks this field, or None. SQLite stores a bool as the integer 0 or 1."""
        if value is None:
            return None if self.nullable else f"{self.name} is null but not nullable"
        kind = self.kind
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool) or (sqlite and value in (0, 1) and not isinstance(value, float)),
            "choice": isinstance(value, str) and value in self.choices,
            "container": isinstance(value, list | dict),
        }[kind]
        if ok:
            return None
        return f"{self.name}={value!r} is not {kind}" + (f" {sorted(self.choices)}" if self.choices else "")


def _field(name: str, type_text: str) -> FieldSpec:
    parts = [p.strip() for p in type_text.split("\\|")]
    nullable = "null" in parts
    parts = [p for p in parts if p != "null"]
    if len(parts) == 1 and parts[0] in ("int", "float", "str", "bool"):
        return FieldSpec(name, parts[0], nullable)
    if all(re.fullmatch(r"[a-z_]+", p) for p in parts):
        return FieldSpec(name, "choice", nullable, frozenset(parts))
    return FieldSpec(name, "container", nullable)


def contracts_doc(project: Path) -> Path:
    """``docs/api_contracts.md`` of the project under test, else the copy installed with this
    package (a wheel), else the source checkout's."""
    here = Path(__file__).resolve().parent
    for candidate in (project / DOC, here / "_docs" / DOC.name, here.parent / DOC):
        if candidate.is_file():
            return candidate
    raise AssertionError(f"the documented contracts {DOC} are missing: cannot check rows against them")


def parse_contracts(path: Path) -> dict[str, list[FieldSpec]]:
    """Field specs by contract kind, in documented order."""
    out: dict[str, list[FieldSpec]] = {}
    current: list[FieldSpec] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        section = _SECTION.match(line)
        if section:
            current = out.setdefault(section.group(1), [])
            continue
        row = _ROW.match(line)
        if row and current is not None:
            current.append(_field(row.group(1), row.group(2)))
    return out


def row_problems(row: dict[str, Any], spec: list[FieldSpec], *, sqlite: bool = False) -> list[str]:
    """How a row differs from its documented contract: field names and order, then values."""
    names = [f.name for f in spec]
    if list(row) != names:
        return [f"fields {list(row)} instead of {names}"]
    return [p for f in spec if (p := f.problem(row[f.name], sqlite=sqlite))]


def sqlite_column_problems(columns: list[tuple[str, str, bool]], spec: list[FieldSpec]) -> list[str]:
    """(name, declared type, NOT NULL) of a table's columns against the documented contract."""
    names = [c[0] for c in columns]
    if names != [f.name for f in spec]:
        return [f"columns {names} instead of {[f.name for f in spec]}"]
    problems = []
    for (name, declared, notnull), f in zip(columns, spec, strict=True):
        want = _SQL_AFFINITY.get(f.kind)
        if want is not None and declared.upper() != want:
            problems.append(f"column {name} is {declared or 'untyped'}, documented {f.kind} ({want})")
        if notnull == f.nullable:
            problems.append(f"column {name} NOT NULL={notnull}, documented nullable={f.nullable}")
    return problems
