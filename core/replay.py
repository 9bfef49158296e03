"""Replaying a recorded run: ``unmix separate --replay PROVENANCE.json``.

A provenance (written by :mod:`unmix.export`) records the configuration of a separation; :func:`separate_options`
turns it back into the ``separate`` command's option values (method, method options, format, locations, dtype, gap
policy, inventory, the prior's model, table or file, …) and the recorded input. A provenance is untrusted input: every
field is checked for its type here and every value again by the command's own option types, so that a damaged or
hostile file ends in one line naming it. The files it names (model, table, prior, input) must still hold the recorded
bytes (SHA-256), or the replay would not be exact and is refused. A provenance written by another Unmix version gives
a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from unmix import __version__
from unmix.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

MAX_PROVENANCE_BYTES = 16 << 20
#: Option keys the ``separate`` command puts into the method options itself (from its own flags).
_FROM_FLAGS = {"inventory", "device", "table", "clusters", "scale", "prior"}


def read_provenance(path: str | Path) -> dict:
    """The provenance as a dict; a missing, huge, non-JSON or foreign file is one error naming it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PROVENANCE_BYTES:
            raise InputFileError(f"larger than {MAX_PROVENANCE_BYTES} bytes; not an Unmix provenance", path)
        prov = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise InputFileError(f"cannot read the provenance ({exc.strerror or exc})", path) from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputFileError("not a JSON provenance file", path) from None
    if not isinstance(prov, dict) or prov.get("tool") != "unmix":
        raise InputFileError("not an Unmix provenance (no \"tool\": \"unmix\")", path)
    return prov


def _field(mapping: dict, key: str, kinds, path: Path, what: str = "") -> Any:
    value = mapping.get(key)
    if not isinstance(value, kinds):
        raise InputFileError(f"damaged provenance: {what or key} is {type(value).__name__}, not as written by Unmix",
                             path)
    return value


def _check_sha(file: str, recorded: Any, path: Path, what: str) -> None:
    from unmix.hashing import file_sha256

    if not isinstance(recorded, str):
        raise InputFileError(f"damaged provenance: no SHA-256 of the {what}", path)
    if not Path(file).is_file():
        raise InputFileError(f"the recorded {what} {file} no longer exists", path)
    if file_sha256(file) != recorded:
        raise ConfigError(f"the recorded {what} {file} has changed since the run (SHA-256 differs); the replay would "
                          "not be exact", path)


def _option_pairs(options: dict, path: Path) -> list[str]:
    """The method's own options as ``KEY=VALUE`` strings (JSON values, as ``--METHOD-opt`` reads them)."""
    pairs = []
    for key, value in sorted(options.items()):
        if not isinstance(key, str) or not key.isidentifier():
            raise InputFileError(f"damaged provenance: option name {key!r}", path)
        if key not in _FROM_FLAGS:
            pairs.append(f"{key}={value if isinstance(value, str) else json.dumps(value)}")
    return pairs


def _prior_values(method: str, options: dict, model: dict | None, path: Path) -> dict:
    """``--model/--store/--table/--prior/--background-cluster/--scale`` (and n_prior) from the recorded prior."""
    if model is None:
        return {}
    out: dict[str, Any] = {}
    if "table" in model:
        _check_sha(str(model["table"]), model.get("table_sha256"), path, "cluster table")
        out["table"] = model["table"]
    elif "path" in model:
        _check_sha(str(model["path"]), model.get("sha256"), path, "model")
        out.update(model=model["path"], store=_field(model, "store", str, path, "model.store"))
    elif "prior_file" in model:
        _check_sha(str(model["prior_file"]), model.get("prior_sha256"), path, "prior file")
        out["prior_file"] = model["prior_file"]
        shape = options.get("prior", {}).get("array") if isinstance(options.get("prior"), dict) else None
        if not (isinstance(shape, list) and shape and isinstance(shape[0], int)):
            raise InputFileError("damaged provenance: the prior's shape is missing", path)
        out["n_prior"] = shape[0]
    else:
        raise InputFileError("damaged provenance: model names no model, table or prior file", path)
    if "table" in out or "model" in out:
        clusters = _field(options, "clusters", list, path, "options.clusters")
        out["background_cluster"] = ",".join(str(int(c)) for c in clusters if isinstance(c, int))
        out["scale"] = _field(options, "scale", int, path, "options.scale")
    return out


def _unrecorded(method: str) -> dict[str, Any]:
    """The values of options that a provenance of ``method`` written before they were recorded ran with
    (:attr:`unmix.separation.base.BaseSeparator.unrecorded`); nothing for a method that cannot be loaded (the
    replay then fails on the method itself, with its own message)."""
    from unmix.separation.registry import methods

    spec = methods().get(method)
    try:
        return spec.unrecorded() if spec is not None else {}
    except ConfigError:
        return {}


def separate_options(path: str | Path) -> dict[str, Any]:
    """The ``separate`` command's option values (Click parameter names) that re-run the recorded configuration;
    ``method_options`` holds the ``KEY=VALUE`` pairs of the method's ``--METHOD-opt``."""
    path = Path(path)
    prov = read_provenance(path)
    if prov.get("version") != __version__:
        log.warning("%s was written by Unmix %s; this is Unmix %s: outputs may differ", path,
                    prov.get("version", "?"), __version__)
    config = _field(prov, "configuration", dict, path)
    method = _field(config, "method", str, path, "configuration.method")
    options = {**_unrecorded(method), **_field(config, "options", dict, path, "configuration.options")}
    model = config.get("model")
    if model is not None and not isinstance(model, dict):
        raise InputFileError("damaged provenance: configuration.model is not an object", path)
    locations = _field(config, "locations", dict, path, "configuration.locations")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in locations.items()):
        raise InputFileError("damaged provenance: configuration.locations", path)
    prior = _prior_values(method, options, model, path)
    pairs = _option_pairs(options, path) + ([f"n_prior={prior.pop('n_prior')}"] if "n_prior" in prior else [])
    values: dict[str, Any] = {
        "method": method, "method_options": pairs, "fmt": config.get("format"), "gap_policy": config.get("gap_policy"),
        "max_fill": config.get("max_fill"), "resample_to": config.get("resample_to"), "dtype": config.get("dtype"),
        "locations": ",".join(f"{k}={v}" for k, v in sorted(locations.items())) or None,
        "inventory": config.get("inventory"), "allow_damaged": bool(prov.get("damage")),
        **dict.fromkeys(("model", "store", "table", "prior_file", "background_cluster", "scale")), **prior,
    }
    if isinstance(options.get("device"), str):
        values["device"] = options["device"]
    values["inputs"] = [_recorded_input(prov, path)]
    return values  # None: the option's own default (a configuration file's value must not fill it in)


def _recorded_input(prov: dict, path: Path) -> str:
    """The recorded input, checked against its recorded SHA-256 (checked lazily: only used without new inputs)."""
    return _field(prov, "input", str, path, "input")


def check_recorded_input(path: str | Path, input_file: str) -> None:
    """Refuse a replay on the recorded input when that file changed since the run."""
    prov = read_provenance(path)
    _check_sha(input_file, prov.get("input_sha256"), Path(path), "input")


#: FeatureConfig fields that the ``features`` command sets, by its option (parameter) names.
_FEATURE_OPTIONS = {"window": "window", "hop": "hop", "J": "J", "Q": "Q", "wavelet": "wavelet", "model": "model",
                    "keep": "keep", "edge": "edge", "components": "components", "response": "response",
                    "response_output": "response_output", "rotate": "rotate", "sampling_rate": "sampling_rate",
                    "gap_policy": "gap_policy", "max_fill": "max_fill", "glitch_evidence": "glitch_evidence"}


def features_options(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``features`` command's option values that recompute the store at ``path`` (its recorded configuration
    and inputs), and the recorded SHA-256 of each input. Settings the command line cannot set are refused."""
    from dataclasses import fields

    from unmix.features import FeatureConfig
    from unmix.features.store import FeatureStore

    store = FeatureStore(path)  # validates the store (untrusted) and its configuration
    config, default = store.config, FeatureConfig()
    for f in fields(FeatureConfig):
        if f.name not in _FEATURE_OPTIONS and f.name not in ("scales", "normalize") and \
                getattr(config, f.name) != getattr(default, f.name):
            raise ConfigError(f"recorded {f.name}={getattr(config, f.name)!r} is not a command-line setting; "
                              "compute it from Python (unmix.features.build_store)", path)
    values: dict[str, Any] = {opt: getattr(config, name) for opt, name in _FEATURE_OPTIONS.items()}
    values["scales"] = ",".join(str(s) for s in config.scales)
    values["normalize"] = str(config.normalize).lower()  # the option's spelling: none | each_ps
    digests = {}
    for entry in store.inputs:
        if not isinstance(entry.get("path"), str):
            raise InputFileError("damaged feature store: an input without a path", path)
        digests[entry["path"]] = entry.get("sha256")
    values["inputs"] = list(digests)
    values["allow_damaged"] = any(isinstance(r, dict) and r.get("damage") for e in store.inputs
                                  for r in e.get("records", []))
    return values, digests


def check_recorded_inputs(path: str | Path, digests: dict[str, Any]) -> None:
    """Refuse a replay on recorded inputs that changed (or vanished) since the run."""
    for file, recorded in digests.items():
        _check_sha(file, recorded, Path(path), "input")
