"""Read catalog files (YAML, or JSON, which is YAML) into `CatalogSource`s for `plan_catalog` and
`apply_catalog`.

YAML is read with a safe loader (no tags that build objects) in which every float is the exact
decimal it spells (`0.1` is Decimal("0.1"), never a float), and a mapping that repeats a key is an
error (`catalog_key_duplicated`) instead of the last one silently winning.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tally.core.catalog.files import CatalogSource
from tally.core.rejections import Rejected

CATALOG_FILE_BYTES_MAX = 5_000_000
CATALOG_FILES_MAX = 500


class _ExactLoader(yaml.SafeLoader):  # type: ignore[misc]  # no stubs for PyYAML
    pass


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    lowered = text.lower()
    if lowered in (".nan", ".inf", "+.inf", "-.inf"):
        return Decimal(lowered.replace(".", ""))
    return Decimal(text)


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise Rejected.because("catalog_key_duplicated", f"line {line}: key {str(key)[:60]!r} appears twice")
        seen.add(key)
    return dict(loader.construct_pairs(node, deep=True))


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal)
_ExactLoader.add_constructor("tag:yaml.org,2002:map", _mapping)


def parse_catalog_text(name: str, text: str) -> CatalogSource:
    try:
        content = yaml.load(text, Loader=_ExactLoader)  # noqa: S506 - a SafeLoader subclass
    except Rejected as rejected:
        raise Rejected.because(rejected.rejection.code, f"{name}: {rejected.rejection.message}", name) from None
    except yaml.YAMLError as error:
        raise Rejected.because("catalog_file_invalid", f"{name} is not valid YAML: {error}", name) from None
    return CatalogSource(name=name, content=content)


def load_catalog_files(paths: Sequence[str | Path]) -> list[CatalogSource]:
    """Each file's content, in the order given. A directory stands for its *.yaml and *.yml files."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(sorted(item for item in path.rglob("*") if item.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            raise Rejected.because("catalog_file_not_found", f"{entry} is not a file or directory", str(entry))
    if len(files) > CATALOG_FILES_MAX:
        raise Rejected.because("catalog_files_exceed_limit", f"at most {CATALOG_FILES_MAX} catalog files")
    sources = []
    for path in files:
        if path.stat().st_size > CATALOG_FILE_BYTES_MAX:
            raise Rejected.because(
                "catalog_file_too_large", f"{path}: a catalog file is at most {CATALOG_FILE_BYTES_MAX} bytes", str(path)
            )
        sources.append(parse_catalog_text(str(path), path.read_text(encoding="utf-8")))
    return sources
