"""A Bento per promotion: `bentoml build` of `bentos/` tagged `lifecycle:<model version>`,
with the build argument `model=<name>:<version>`. The service declares that model
(`bentoml.models.BentoModel`), so the build packs it, with the config it was registered
under, and the built Bento serves it with no lifecycle home (`bentoml serve
lifecycle:<version>`, or the image of `bentoml containerize`). Offline-safe: the bentofile
does not lock packages against an index, and the build runs with the home's BENTOML_HOME.

The model lives in the registry's model store; the build is the one place BentoML needs it
in its own store, so `export_model` copies it there first (`serving/bento_export.py`, BentoML's
public API in a child process with the home's BENTOML_HOME), checked against its registration;
the same child then builds the Bento (`bentoml.bentos.build_bentofile`, what `bentoml build`
runs), so Python and BentoML start once per Bento."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from lifecycle_assets.errors import LifecycleError
from lifecycle_assets.home import LifecycleHome, project_root
from lifecycle_assets.registry.registry import (
    Registry,
    bento_model_tag,
    load_version,
    model_path,
    recorded_digest,
    validate_version,
)
from lifecycle_assets.training.artifact import artifact_digest

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
    """(tag, built): builds `lifecycle:<version>` unless the home already has it, with the
    model exported to the home's BentoML store first, in the same child process."""
    tag = bento_tag(version)
    if bento_built(home, version):
        return tag, False
    spec_dir = home.root / "bento-builds"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec_path = spec_dir / f"bentofile-{version}.yaml"
    spec_path.write_text(yaml.safe_dump(bentofile_for(version), sort_keys=False))
    build = {
        "bentofile": str(spec_path),
        "version": version,
        "args": {"model": bento_model_tag(model_name, version)},
        "build_ctx": str(project_root()),
    }
    export_model(home, model_name, version, timeout, build=build)
    return tag, True


def export_model(
    home: LifecycleHome,
    model_name: str,
    version: str,
    timeout: float = 300,
    build: dict[str, Any] | None = None,
) -> bool:
    """Copy a registered version from the registry's model store into the home's BentoML
    model store as `NAME:vN` (restored from the DVC remote first when the registry's store
    lacks it), labelled with its task, day, device and data version, and with its registry
    entry as metadata: `artifact_sha256` is what a built Bento checks its packed model
    against before it serves. True when it was copied; False when BentoML's store already
    held it with the registered digest and the registry's files. A copy whose files differ
    (changed in BentoML's store) is made again. With `build` (`build_bento`'s spec), the
    same child process then builds the Bento that packs it, once the copy holds the
    registry's files. The copy is checked against the registration here as well."""
    registry = Registry(home, model_name)
    registry.restore(version)
    artifact = load_version(home, model_name, version)  # verified against its registration
    entry = registry.require(version)
    request = {
        "tag": bento_model_tag(model_name, version),
        "source": str(model_path(home, model_name, version)),
        "labels": {
            "task": artifact.task,
            "version": version,
            "day": str(entry.get("day") or ""),
            "device": str(entry.get("device") or ""),
            "data_version": str(entry.get("train_split_tag") or ""),
        },
        # BentoML metadata takes no nulls, at any depth; the full record stays in
        # versions.json.
        "metadata": _without_nulls(entry),
        "build": build,
    }
    what = f"exporting {request['tag']} to BentoML"
    if build is not None:
        what += f" and bentoml build of {bento_tag(version)}"
    done = _in_home(
        home,
        ["lifecycle_assets.serving.bento_export"],
        what,
        timeout,
        stdin=json.dumps(request),
    )
    exported = json.loads(done.stdout.strip().splitlines()[-1])
    if artifact_digest(Path(exported["path"])) != recorded_digest(home, version):
        raise BentoBuildError(
            f"{request['tag']} in the BentoML store of {home.root} does not match its "
            "registration; refused"
        )
    return bool(exported["created"])


def _in_home(
    home: LifecycleHome, module: list[str], what: str, timeout: float, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m <module...>` from the project root with the home's environment (its
    BENTOML_HOME); a failure raises `BentoBuildError` with the end of its output."""
    done = subprocess.run(
        [sys.executable, "-m", *module],
        input=stdin,
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
            f"{what} failed ({done.returncode}): " + (done.stdout + done.stderr)[-2000:]
        )
    return done


def _without_nulls(value: Any) -> Any:
    """`value` with every None dropped (from dicts and lists, at any depth)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_nulls(v) for v in value if v is not None]
    return value
