"""Loading and validating configs against ``sfsrnet/schemas/config.schema.yaml``.

One schema describes a study and one cell's resolved config; validation fills in its defaults, so
defaults live in one place. Errors name the offending key as a dotted path.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sfsrnet.errors import ConfigError

SCHEMA_FILE = "config.schema.yaml"


def schema() -> dict[str, Any]:
    """The config schema as a mapping."""
    text = resources.files("sfsrnet.schemas").joinpath(SCHEMA_FILE).read_text("utf-8")
    return yaml.safe_load(text)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping is a :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML: {problem}{where}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def save_yaml(data: dict[str, Any], path: str | Path) -> None:
    """Write ``data`` as YAML (key order kept)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def _with_defaults(validator_class: type) -> type:
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def error_path(err: jsonschema.ValidationError) -> str:
    """Dotted path of the key a validation error is about (``<top level>`` for the root)."""
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        path = ", ".join(".".join(filter(None, [path, key])) for key in extra)
    return path or "<top level>"


def validate(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` and return a copy with every default filled in.

    Raises :class:`ConfigError` naming the key, e.g. ``train.epochs: -1 is less than 1``.
    """
    config = copy.deepcopy(config)
    errors = sorted(_Validator(schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: bad value for key {error_path(err)}: {err.message}{more}")
    _check_consistency(config, source)
    return config


def _check_consistency(config: dict[str, Any], source: str) -> None:
    """Rules that span keys, which the schema cannot state (a grid's cells are checked by the
    workflow when it expands them)."""
    rate, factor = config["data"]["sample_rate"], config["system"]["factor"]
    if config["system"]["mode"] == "resample" and rate % factor:
        fitting = [d for d in range(1, 17) if rate % d == 0]
        raise ConfigError(
            f"{source}: system.factor {factor} does not divide data.sample_rate {rate} Hz, so "
            f"the separator would run at {rate / factor:g} Hz; factors up to 16 that do: {fitting}"
        )


def get(config: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key such as ``train.lr``."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"config has no key {dotted}")
        node = node[part]
    return node


def set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key such as ``separator.args.chunk_size``, creating mappings on the way."""
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {dotted}: {part} is not a mapping")
    node[last] = value


def load(path: str | Path) -> dict[str, Any]:
    """Load and validate a config file (defaults filled in)."""
    return validate(load_yaml(path), source=str(path))
