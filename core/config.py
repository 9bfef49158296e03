"""Configuration files: ``unmix --config run.toml COMMAND …`` (TOML, read with the standard library's ``tomllib``).

Top-level keys are the global options (``verbose = 1``, ``log-file = "run.log"``); each table is a command, keyed by
the command's option names without the dashes, e.g.::

    [features]
    gap-policy = "fill"
    max-fill = 40
    scales = [1024, 4096]          # a list is joined with commas for options that take "a,b,c"

    [separate]
    method = "hybrid"
    hybrid-opt = ["residual=none"]

    [bench.separation]             # subcommands of a group are nested tables
    seeds = "0,1"

Options given on the command line win over the file. The file becomes Click's ``default_map``; every key and value is
checked against the command's options first, so that a misspelt key or a bad value is one line naming the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

from unmix.errors import ConfigError, InputFileError

MAX_CONFIG_BYTES = 1 << 20
SKIPPED = {"help", "version", "config", "self_test", "self_test_out"}


def read_toml(path: str | Path) -> dict:
    """The parsed file; a missing, huge or malformed file is one :class:`InputFileError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes() if path.stat().st_size <= MAX_CONFIG_BYTES else None
    except OSError as exc:
        raise InputFileError(f"cannot read the configuration file ({exc.strerror or exc})", path) from None
    if data is None:
        raise InputFileError(f"configuration file larger than {MAX_CONFIG_BYTES} bytes", path)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(f"not a valid TOML file ({exc})", path) from None


def option_keys(command: click.Command) -> dict[str, click.Parameter]:
    """Configuration key → parameter: each option's long names without dashes, each argument's name."""
    keys: dict[str, click.Parameter] = {}
    for param in command.params:
        if param.name in SKIPPED or getattr(param, "hidden", False):
            continue
        if isinstance(param, click.Argument):
            keys[param.name] = param
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:]] = param
    return keys


def _convert(command: click.Command, param: click.Parameter, value: Any, where: str, path: Path) -> Any:
    """``value`` as Click would take it from the command line; a bad value is a one-line :class:`ConfigError`."""
    many = param.multiple or param.nargs == -1
    if many:
        value = list(value) if isinstance(value, list) else [value]
    elif isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if isinstance(value, dict):
        raise ConfigError(f"{where}: expected a value, got a table", path)
    try:
        with click.Context(command) as ctx:
            param.type_cast_value(ctx, value)
    except click.BadParameter as exc:
        raise ConfigError(f"{where}: {exc.message}", path) from None
    return value


def check_values(command: click.Command, values: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``values`` keyed by parameter name, each checked as :func:`default_map` does (for values not read from TOML,
    e.g. a replayed provenance)."""
    params = {p.name: p for p in command.params}
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ConfigError(f"no option {unknown[0]!r} in `{command.name}`", path)
    return {k: _convert(command, params[k], v, k, Path(path)) for k, v in values.items()}


def default_map(data: dict, command: click.Command, path: str | Path, prefix: str = "") -> dict:
    """Click ``default_map`` for ``command`` from a parsed configuration file (validated; see the module doc)."""
    path = Path(path)
    keys = option_keys(command)
    subcommands = command.commands if isinstance(command, click.Group) else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        where = f"[{prefix}] {key}" if prefix else key
        if key in subcommands and isinstance(value, dict):
            out[key] = default_map(value, subcommands[key], path, f"{prefix}.{key}" if prefix else key)
        elif key in keys:
            out[keys[key].name] = _convert(command, keys[key], value, where, path)
        else:
            valid = sorted(keys) + [f"[{name}]" for name in sorted(subcommands)]
            what = "command table" if isinstance(value, dict) else "key"
            raise ConfigError(f"unknown {what} {where!r}; valid: {', '.join(valid) or 'none'}", path)
    return out


def load_config(path: str | Path, command: click.Command) -> dict:
    """Read and validate ``path`` against the command tree of ``command``; returns its ``default_map``."""
    return default_map(read_toml(path), command, path)
