"""A registered model's files copied into a BentoML model store through BentoML's public API.

Run in a child process whose `BENTOML_HOME` is the lifecycle home's (`serving/bento.py`,
`export_model`): BentoML resolves its store from the environment once per process, and the
process that asks may work on several homes. Reads one JSON request on stdin — `tag`
(`NAME:vN`), `source` (the version's folder in the registry's model store), `labels`,
`metadata` (the registry entry, with `artifact_sha256`), `replace` — and prints one JSON
line: the model's `path` in the store and whether it was `created`. A model already stored
under the tag with the same `artifact_sha256` is kept as it is, unless `replace`; one with
another digest is replaced.

Light on purpose: BentoML and the standard library only, no PyTorch.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any


def export(request: dict[str, Any]) -> dict[str, Any]:
    import bentoml
    from bentoml.exceptions import NotFound

    tag = str(request["tag"])
    digest = request["metadata"]["artifact_sha256"]
    try:
        stored = bentoml.models.get(tag)
    except NotFound:
        stored = None
    if stored is not None:
        if stored.info.metadata.get("artifact_sha256") == digest and not request.get("replace"):
            return {"path": stored.path, "created": False}
        bentoml.models.delete(tag)
    with bentoml.models.create(
        tag, labels=request["labels"], metadata=request["metadata"]
    ) as model:
        for src in sorted(Path(request["source"]).iterdir()):
            if src.is_file():
                shutil.copy2(src, Path(model.path) / src.name)
    return {"path": bentoml.models.get(tag).path, "created": True}


if __name__ == "__main__":
    print(json.dumps(export(json.loads(sys.stdin.read()))))
