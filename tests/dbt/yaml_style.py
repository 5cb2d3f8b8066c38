"""The house style of the dbt project's YAML files, as one emitter.

Every `.yml` under `dbt_project/models` is what :func:`dump` writes for its content: block
style, sequences indented under their key, two spaces, text wrapped at the first space after
column 86 (lines stay within about 100 characters), no anchors or aliases, multi-line text as
`|` blocks, one-line text without a trailing newline, keys in the order written. A leading
block of `#` comments is kept. `test_project_docs.py` checks every file; to reformat one after an edit:

    python tests/dbt/yaml_style.py dbt_project/models/marts/ads/_ads__models.yml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

WIDTH = 86


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # sequences indented under their key (`key:\n  - item`), not flush with it
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value.strip("\n"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    # a folded (`>`) description's closing newline means nothing to dbt
    return dumper.represent_scalar("tag:yaml.org,2002:str", value.strip("\n"))


_Dumper.add_representer(str, _text)


def split_header(text: str) -> tuple[str, str]:
    """(the leading `#` comment lines, the rest)."""
    lines = text.splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        n += 1
    return "".join(lines[:n]), "".join(lines[n:])


def dump(content: Any) -> str:
    """The house-style text of `content`."""
    return yaml.dump(
        content,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=WIDTH,
        indent=2,
    )


def styled(text: str) -> str:
    """`text` (a whole YAML file) rewritten in the house style, its header comments kept."""
    header, body = split_header(text)
    return header + dump(yaml.safe_load(body))


def main(paths: list[str]) -> None:
    """Rewrite the given files in the house style."""
    for name in paths:
        path = Path(name)
        path.write_text(styled(path.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
