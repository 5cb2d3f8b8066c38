"""A reader test: the README's "Where things live" names every package, and every domain has
the same rooms (core, Dagster definitions, tests, dbt area), each playing its role."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _rooms() -> dict[str, list[str]]:
    """domain → [core, definitions, tests, dbt area] from the README's domain table."""
    rooms = {}
    for line in _section("Where things live").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        paths = [c.strip("`") for c in cells[1:]]
        if len(cells) == 5 and paths[0].startswith("everreach/"):
            rooms[cells[0]] = paths
    return rooms


def _packages(folder: Path) -> set[str]:
    return {p.parent.name for p in folder.glob("*/__init__.py")}


def test_the_readme_names_every_top_level_package_and_core_package():
    section = _section("Where things live")
    top = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {"everreach", "everreach_pipelines", "webhook_receiver"} <= top
    missing = [f"{name}/" for name in sorted(top) if f"`{name}/`" not in section]
    missing += [
        f"everreach/{name}/"
        for name in sorted(_packages(ROOT / "everreach"))
        if f"`everreach/{name}/`" not in section and f"`{name}/`" not in section
    ]
    missing += [
        f"everreach_pipelines/{name}/"
        for name in sorted(_packages(ROOT / "everreach_pipelines") - {"defs"})
        if f"everreach_pipelines/{name}/" not in section and f"`{name}/`" not in section
    ]
    assert not missing, f"README 'Where things live' does not name: {missing}"


def test_every_domain_has_the_same_rooms():
    rooms = _rooms()
    assert {"ads", "organic", "capi", "messaging"} <= set(rooms)
    for domain, (core, defs, tests, area) in rooms.items():
        assert core == f"everreach/{domain}/" and defs == f"everreach_pipelines/defs/{domain}/"
        assert tests == f"tests/{domain}/" and area.startswith("dbt_project/models/marts/")
        for path in (core, defs, tests, area):
            assert (ROOT / path).is_dir(), f"{domain}: {path} is missing"
        assert (ROOT / core / "settings.py").is_file(), f"{domain}: no settings.py in {core}"
        assert (ROOT / defs / "README.md").is_file(), f"{domain}: no README in {defs}"
        assert list((ROOT / area).glob("*.sql")), f"{domain}: no models in {area}"
        assert list((ROOT / tests).glob("test_*.py")), f"{domain}: no tests in {tests}"
    # every domain with Dagster definitions and a core is in the table
    for name in _packages(ROOT / "everreach_pipelines" / "defs") & _packages(ROOT / "everreach"):
        assert name in rooms, f"{name} has a core and definitions but no row in the README"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_each_room_plays_its_role():
    # the core never imports Dagster or the pipelines; SQL checks live in the core, and the
    # definitions' checks.py hold Dagster checks (no SQL of their own)
    for domain, (core, defs, _, _) in _rooms().items():
        for path in (ROOT / core).rglob("*.py"):
            bad = {m for m in _imports(path) if re.match(r"(dagster|everreach_pipelines)\b", m)}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
        checks = ROOT / defs / "checks.py"
        if checks.is_file():
            text = checks.read_text()
            assert not re.search(r"conn\.execute\(", text), f"{domain}: SQL in {defs}checks.py"
