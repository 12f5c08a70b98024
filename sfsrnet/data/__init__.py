"""Corpora: the embedded synthetic corpus, real corpora from disk, loaders and dynamic mixing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any


def resolve_corpus(config: dict[str, Any]) -> dict[str, Any]:
    """The config's ``data`` section with the corpus location filled in (provisional)."""
    data = copy.deepcopy(config["data"])
    results = Path(config["results_dir"])
    if data["corpus"] == "embedded":
        from sfsrnet.data.embedded import CorpusSpec

        if not data["root"]:
            data["root"] = str(results / "data" / f"embedded-{CorpusSpec.from_config(data).key()}")
        return data
    from sfsrnet.data.corpora import default_prepared_dir, resolve_root

    data["root"] = str(resolve_root(data))
    data["prepared"] = data["prepared"] or str(default_prepared_dir(config))
    return data


def corpus_folder(data: dict[str, Any]) -> str:
    """The folder that holds the corpus's ``manifest.json``."""
    return data["root"] if data["corpus"] == "embedded" else data["prepared"]
