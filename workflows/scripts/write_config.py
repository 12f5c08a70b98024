"""Snakemake script: write ``params.content`` to ``output[0]``, as JSON or YAML by its suffix."""

import json
from pathlib import Path

import yaml

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive
out = Path(snakemake.output[0])
content = snakemake.params.content
if out.suffix == ".json":
    out.write_text(json.dumps(content, indent=2) + "\n")
else:
    out.write_text(yaml.safe_dump(content, sort_keys=False))
Path(snakemake.log[0]).write_text(f"wrote {out}\n")
