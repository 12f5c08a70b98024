# The study workflow: make the corpus, train and evaluate every cell of the grid, report.
# Each step is a call of the library's CLI (python -m sfsrnet ...), so any cell can be rerun by hand.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


try:
    validate(config, "workflows/schemas/config.schema.yaml")
except WorkflowError as err:
    # Snakemake's own message prints the whole schema; one line naming the key says more.
    cause = err.__context__  # the jsonschema ValidationError
    if not hasattr(cause, "absolute_path"):
        raise
    key = ".".join(map(str, cause.absolute_path))
    if cause.validator == "additionalProperties":
        extra = sorted(set(cause.instance) - set(cause.schema.get("properties", {})))
        key = ", ".join(".".join(filter(None, [key, k])) for k in extra)
    raise WorkflowError(
        f"config: bad value for key {key or '<top level>'}: {cause.message}"
    ) from None


include: "workflows/rules/common.smk"
include: "workflows/rules/data.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/evaluate.smk"
include: "workflows/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
