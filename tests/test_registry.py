"""The separation-method registry is the one source of the CLI's, GUI's and benchmarks' methods (#15 item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from unmix.errors import ConfigError
from unmix.separation import registry

PLUGINS = Path(__file__).parent / "plugins"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the GUI form tests need no display


def _record(path: Path) -> Path:
    data = np.random.default_rng(0).normal(5.0, 1.0, 2000)
    Stream([Trace(data, {"network": "XB", "station": "ELYSE", "location": "02", "channel": "BHU",
                         "sampling_rate": 20.0, "starttime": UTCDateTime(2019, 7, 26)})]).write(str(path), "MSEED")
    return path


def _unmix(args: list[str], prelude: str = "", pythonpath: list[Path] = ()) -> subprocess.CompletedProcess:
    """``unmix ARGS`` in a fresh process (the CLI reads the registry when it is imported)."""
    code = f"{prelude}\nfrom unmix.cli import main\nmain({args!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_unknown_option_key_is_one_line_listing_the_valid_keys():
    with pytest.raises(ConfigError) as err:
        registry.get_method("template", min_variance_redution=0.7)
    message = str(err.value)
    assert "\n" not in message and "min_variance_redution" in message
    assert "valid: " in message and "min_variance_reduction" in message
    with pytest.raises(ConfigError, match="unknown separation method 'nope'.*template, highpass, scatcov, hybrid"):
        registry.get_method("nope")


def test_every_entry_has_a_description_and_typed_options():
    for name, spec in registry.BUILTIN.items():
        assert spec.summary() and set(spec.uses) <= set(registry.USES)
        assert spec.load().name == name  # the class knows its registry name (provenance, GUI)
        options = {o.name: o for o in spec.options()}
        assert options, name
    assert {o.name: o.default for o in registry.BUILTIN["highpass"].options()} == {
        "freq": 0.1, "corners": 4, "zerophase": True}
    hybrid = registry.BUILTIN["hybrid"].option_names()  # its stages' dataclass fields are flat keys
    from unmix.separation.hybrid import valid_options

    assert hybrid == valid_options()


def test_importing_the_methods_registers_nothing():
    code = ("import unmix.baselines, unmix.separation.scatcov, unmix.separation.hybrid\n"
            "from unmix.separation.registry import METHODS\nprint(len(METHODS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_cli_misspelt_option_is_one_error_line(tmp_path):
    record = _record(tmp_path / "in.mseed")
    out = _unmix(["separate", str(record), "--out", str(tmp_path / "out"), "--template-opt",
                  "min_variance_redution=0.7"])
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --template-opt: unknown option(s) min_variance_redution")
    assert "min_variance_reduction" in lines[0]
    assert not (tmp_path / "out").exists()


TOY_ENTRY = ("from unmix.separation.registry import BUILTIN, MethodSpec\n"
             "BUILTIN['toy'] = MethodSpec('toy', 'unmix_toy_plugin:ToySeparator', 'removes the mean')")


def _runs_toy(tmp_path: Path, prelude: str, pythonpath: list[Path]) -> None:
    listing = _unmix(["separate", "--list-methods"], prelude, pythonpath)
    assert listing.returncode == 0, listing.stderr
    assert "toy: " in listing.stdout and "scale (float, default 1.0)" in listing.stdout
    helped = _unmix(["separate", "--help"], prelude, pythonpath)
    assert "hybrid|toy]" in helped.stdout.replace("\n", "") and "--toy-opt" in helped.stdout
    record = _record(tmp_path / "in.mseed")
    run = _unmix(["separate", str(record), "--out", str(tmp_path / "out"), "--method", "toy", "--toy-opt",
                  "scale=0.5"], prelude, pythonpath)
    assert run.returncode == 0, run.stderr
    from obspy import read

    background = read(str(next((tmp_path / "out").glob("*background*.mseed"))))[0].data
    offset = read(str(next((tmp_path / "out").glob("*offset*.mseed"))))[0].data
    raw = read(str(record))[0].data
    np.testing.assert_allclose(background + offset, raw)
    np.testing.assert_allclose(offset, 0.5 * raw.mean())
    provenance = json.loads(next((tmp_path / "out").glob("*provenance*.json")).read_text())
    assert "toy" in json.dumps(provenance)
    bad = _unmix(["separate", str(record), "--out", str(tmp_path / "bad"), "--method", "toy", "--toy-opt",
                  "scael=2"], prelude, pythonpath)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: --toy-opt: unknown option(s) scael; valid: removed_name, scale; every method also takes protect")


def test_a_toy_method_is_one_file_plus_one_registry_entry(tmp_path):
    """unmix_toy_plugin/__init__.py is the file; TOY_ENTRY the one registry line: the CLI offers and runs it."""
    _runs_toy(tmp_path, TOY_ENTRY, [PLUGINS])


def test_a_plugin_registers_through_the_entry_point_group(tmp_path):
    """A distribution that declares ``unmix.separation_methods`` (no pip, no network): found, listed and run."""
    site = tmp_path / "site"
    dist = site / "unmix_toy_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: unmix-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{registry.GROUP}]
        toy = unmix_toy_plugin:ToySeparator
        """))
    _runs_toy(tmp_path, "", [site, PLUGINS])


def test_a_plugin_cannot_replace_a_builtin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "evil-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evil\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.GROUP}]\ntemplate = unmix_toy_plugin:ToySeparator\n")
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.syspath_prepend(str(site))
    assert registry.method_spec("template").target == "unmix.baselines.template:TemplateDeglitcher"


def test_run_time_registration(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    from unmix_toy_plugin import ToySeparator

    monkeypatch.setattr(registry, "METHODS", {})
    registry.register_method("mine")(ToySeparator)
    assert "mine" in registry.method_names()
    assert registry.get_method("mine", scale=2.0).scale == 2.0
    with pytest.raises(ConfigError, match="valid: removed_name, scale"):
        registry.get_method("mine", sacle=2.0)


def test_gui_and_benchmark_lists_come_from_the_registry():
    from unmix.evaluation.benchmark import DEFAULT_METHODS

    assert tuple(registry.BUILTIN) == DEFAULT_METHODS
    pytest.importorskip("PySide6")
    from unmix.gui.panels.pipeline import METHODS, PRIOR_METHODS

    assert {key for key, _, _ in METHODS} == set(registry.methods())
    assert METHODS[0][0] == "scatcov"  # the GUI's default is unchanged
    assert set(PRIOR_METHODS) == {"scatcov", "hybrid"}


def test_every_method_flag_checks_its_keys_in_process(tmp_path):
    """``glitches --template-opt`` and ``get_separator`` reject a misspelt key with the valid ones, no TypeError."""
    from click.testing import CliRunner

    import unmix
    from unmix.cli import main

    record = _record(tmp_path / "in.mseed")
    res = CliRunner().invoke(main, ["glitches", str(record), "--out", str(tmp_path / "g.txt"), "--template-opt",
                                    "jerk_treshold=4"])
    assert res.exit_code == 2 and "unknown option(s) jerk_treshold" in res.output
    assert "jerk_threshold" in res.output and not (tmp_path / "g.txt").exists()
    with pytest.raises(ConfigError, match="unknown option.s. frequency.*valid: corners, freq, zerophase"):
        unmix.get_separator("highpass", frequency=0.2)


def test_a_plugin_entry_point_may_name_a_method_spec(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "toy_spec-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-spec\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.GROUP}]\ntoy = unmix_toy_plugin:SPEC\n")
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.syspath_prepend(str(site))
    spec = registry.method_spec("toy")
    assert spec.uses == ("device",) and spec.summary() == "removes the mean of each trace"
    assert "scale (float, default 1.0): fraction of the mean removed" in registry.describe("toy")
    assert registry.get_method("toy", scale=0.25).scale == 0.25


def test_gui_other_options_are_checked_against_the_registry(qtbot):
    """The Separate form's "Other options" reach any method (plugins too); a misspelt key names the valid ones."""
    pytest.importorskip("PySide6")
    from unmix.gui.panels.pipeline import SeparateForm

    form = SeparateForm(None)
    qtbot.addWidget(form)
    form.set_values(method="highpass", extra="corners=2; zerophase=false")
    assert form._extra("highpass") == {"corners": 2, "zerophase": False}
    assert "corners" in form.extra.toolTip() and form.values()["extra"] == "corners=2; zerophase=false"
    form.set_values(extra="corner=2")
    with pytest.raises(ConfigError, match="Other options: unknown option.s. corner; valid: corners, freq, zerophase"):
        form._extra("highpass")
