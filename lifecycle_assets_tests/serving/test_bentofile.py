"""The Bento ships every project module the service imports, and nothing it does not need."""

from __future__ import annotations

from pathlib import Path

import grimp
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _module_file(module: str) -> str:
    path = module.replace(".", "/")
    return f"{path}/__init__.py" if (ROOT / path).is_dir() else f"{path}.py"


def test_the_bento_includes_the_services_import_closure() -> None:
    graph = grimp.build_graph("lifecycle_assets", "bentos")
    needed = {"bentos.service", *graph.find_upstream_modules("bentos.service")}
    # a package's __init__ is imported with any of its modules
    needed |= {m.rsplit(".", 1)[0] for m in needed if "." in m}
    files = {_module_file(m) for m in needed}
    bentofile = yaml.safe_load((ROOT / "bentos" / "bentofile.yaml").read_text())
    shipped = {p for p in bentofile["include"] if p.endswith(".py")}
    assert files - shipped == set(), "the service imports modules the Bento does not ship"
    assert shipped - files == set(), "the Bento ships modules the service never imports"
