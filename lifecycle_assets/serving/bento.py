"""A Bento per promotion: `bentoml build` of `bentos/` tagged `lifecycle:<model version>`,
with the build argument `model=<name>:<version>`. The service declares that model
(`bentoml.models.BentoModel`), so the build packs it, with the config it was registered
under, and the built Bento serves it with no lifecycle home (`bentoml serve
lifecycle:<version>`, or the image of `bentoml containerize`). Offline-safe: the bentofile
does not lock packages against an index, and the build runs with the home's BENTOML_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, project_root
from lifecycle_assets.registry.registry import bento_model_tag, validate_version

BENTO_NAME = "lifecycle"
BENTOFILE = Path("bentos") / "bentofile.yaml"


class BentoBuildError(LifecycleError, RuntimeError):
    """`bentoml build` failed; the message carries the end of its output."""


def bento_tag(version: str) -> str:
    return f"{BENTO_NAME}:{validate_version(version)}"


def bento_dir(home: LifecycleHome, version: str) -> Path:
    return home.bentoml_home / "bentos" / BENTO_NAME / validate_version(version)


def bento_built(home: LifecycleHome, version: str) -> bool:
    """Whether the home's BentoML store already has the Bento of `version`."""
    return (bento_dir(home, version) / "bento.yaml").is_file()


def bentofile_for(version: str) -> dict[str, object]:
    """The project's bentofile plus a label naming the model version it ships."""
    spec = yaml.safe_load((project_root() / BENTOFILE).read_text())
    spec["labels"] = {**spec.get("labels", {}), "model_version": version}
    return dict(spec)


def build_bento(
    home: LifecycleHome, model_name: str, version: str, timeout: float = 900
) -> tuple[str, bool]:
    """(tag, built): builds `lifecycle:<version>` unless the home already has it."""
    tag = bento_tag(version)
    if bento_built(home, version):
        return tag, False
    spec_dir = home.root / "bento-builds"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec_path = spec_dir / f"bentofile-{version}.yaml"
    spec_path.write_text(yaml.safe_dump(bentofile_for(version), sort_keys=False))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bentoml",
            "build",
            "-f",
            str(spec_path),
            "--version",
            version,
            "--arg",
            f"model={bento_model_tag(model_name, version)}",
            "-o",
            "tag",
            ".",
        ],
        cwd=project_root(),
        env={**os.environ, **home.tool_env()},
        capture_output=True,
        text=True,
        timeout=timeout,
        # Out of the terminal's process group: a first Ctrl-C in the demo lets the build
        # finish (the demo stops after the step); an exception here still kills it.
        start_new_session=True,
    )
    if done.returncode != 0:
        raise BentoBuildError(
            f"bentoml build of {tag} failed ({done.returncode}): "
            + (done.stdout + done.stderr)[-2000:]
        )
    return tag, True
