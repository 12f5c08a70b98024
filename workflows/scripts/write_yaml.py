"""Snakemake script: write the rule's ``params.content`` mapping as YAML to ``output[0]``."""

from pathlib import Path

import yaml

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive
Path(snakemake.output[0]).write_text(yaml.safe_dump(snakemake.params.content, sort_keys=False))
Path(snakemake.log[0]).write_text(f"wrote {snakemake.output[0]}\n")
