"""The project uses BentoML's public API only: no module under `bentoml._internal` and no
private keyword (`_model_store=`, `_bento_store=`) in `lifecycle_assets` or `bentos`.
BentoML's private modules change without notice between releases. import-linter cannot say
this (it forbids whole external packages only), so the source is read here."""

from __future__ import annotations

import ast
from pathlib import Path

from lifecycle_assets.home import project_root

PACKAGES = ("lifecycle_assets", "bentos")
PRIVATE_MODULE = "bentoml._internal"


def private_uses(path: Path) -> list[str]:
    """`file:line what` for each use of BentoML's private API in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Attribute) and ast.unparse(node) == PRIVATE_MODULE:
            names = [PRIVATE_MODULE]
        elif isinstance(node, ast.Call):
            names = [
                f"keyword {k.arg}"
                for k in node.keywords
                if k.arg and k.arg.endswith(("_model_store", "_bento_store"))
            ]
        for name in names:
            if (
                name.startswith("keyword ")
                or name == PRIVATE_MODULE
                or name.startswith(PRIVATE_MODULE + ".")
            ):
                found.append(f"{path.relative_to(project_root())}:{node.lineno} {name}")
    return sorted(set(found))


def test_no_private_bentoml_api_in_the_project() -> None:
    files = [f for package in PACKAGES for f in sorted((project_root() / package).rglob("*.py"))]
    assert files
    assert [use for f in files for use in private_uses(f)] == []


def test_the_check_finds_each_kind_of_private_use(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        "lifecycle_assets_tests.test_bentoml_public_api.project_root", lambda: tmp_path
    )
    source = tmp_path / "uses.py"
    source.write_text(
        "import bentoml._internal.models\n"
        "from bentoml._internal.models import ModelStore\n"
        "from bentoml._internal import models\n"
        "import bentoml\n"
        "bentoml._internal\n"
        "bentoml.models.get('m:v1', _model_store=None)\n"
        "bentoml.models.get('m:v1')\n"
        "from bentoml.models import BentoModel\n"
    )
    assert sorted({use.split(" ", 1)[0] for use in private_uses(source)}) == [
        "uses.py:1", "uses.py:2", "uses.py:3", "uses.py:5", "uses.py:6",
    ]  # fmt: skip
