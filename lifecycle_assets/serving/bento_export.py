"""A registered model's files copied into a BentoML model store through BentoML's public API,
and, when asked, the Bento that packs it built in the same process.

Run in a child process whose `BENTOML_HOME` is the lifecycle home's (`serving/bento.py`,
`export_model` and `build_bento`): BentoML resolves its store from the environment once per
process, and the process that asks may work on several homes. One child does the export and
the build, so Python and BentoML start once per Bento.

Reads one JSON request on stdin — `tag` (`NAME:vN`), `source` (the version's folder in the
registry's model store, verified by the caller), `labels`, `metadata` (the registry entry,
with `artifact_sha256`), and optionally `build` (`bentofile`, `version`, `args`, `build_ctx`:
what `bentoml build -f BENTOFILE --version VERSION --arg K=V BUILD_CTX` takes) — and prints
one JSON line: the model's `path` in the store, whether it was `created`, and the `bento` tag
when it built one. A model already stored under the tag with the same `artifact_sha256` and
the source's files is kept as it is; any other is replaced. The Bento is built only once the
stored copy holds the source's files.

Light on purpose: BentoML and the standard library only, no PyTorch (the build imports the
service, which imports none at module level).
"""

from __future__ import annotations

import filecmp
import json
import shutil
import sys
from pathlib import Path
from typing import Any


class ExportError(RuntimeError):
    """The copy in BentoML's store does not hold the source's files."""


def same_files(source: Path, copy: Path) -> bool:
    """Whether `copy` holds each file of `source`, byte for byte."""
    return all(
        (copy / src.name).is_file() and filecmp.cmp(src, copy / src.name, shallow=False)
        for src in source.iterdir()
        if src.is_file()
    )


def export(request: dict[str, Any]) -> dict[str, Any]:
    import bentoml
    from bentoml.exceptions import NotFound

    tag = str(request["tag"])
    source = Path(request["source"])
    digest = request["metadata"]["artifact_sha256"]
    try:
        stored = bentoml.models.get(tag)
    except NotFound:
        stored = None
    if stored is not None:
        if stored.info.metadata.get("artifact_sha256") == digest and same_files(
            source, Path(stored.path)
        ):
            return {"path": stored.path, "created": False}
        bentoml.models.delete(tag)
    with bentoml.models.create(
        tag, labels=request["labels"], metadata=request["metadata"]
    ) as model:
        for src in sorted(source.iterdir()):
            if src.is_file():
                shutil.copy2(src, Path(model.path) / src.name)
    path = bentoml.models.get(tag).path
    if not same_files(source, Path(path)):
        raise ExportError(f"{tag}: the copy in BentoML's store differs from {source}")
    return {"path": path, "created": True}


def build(spec: dict[str, Any]) -> str:
    """`bentoml build` through BentoML's public API; the built Bento's tag."""
    import bentoml

    bento = bentoml.bentos.build_bentofile(
        spec["bentofile"],
        version=spec["version"],
        build_ctx=spec["build_ctx"],
        args=spec["args"],
    )
    return str(bento.tag)


def main(request: dict[str, Any]) -> dict[str, Any]:
    done = export(request)
    if request.get("build"):
        done["bento"] = build(request["build"])
    return done


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.stdin.read()))))
