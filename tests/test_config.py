"""Configuration files (``--config run.toml``) and replays (``--replay``) of issue #15 item 7."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from unmix import __version__
from unmix.cli import main


def run(*args, code: int = 0):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == code, (r.output, r.stderr)
    assert "Traceback" not in r.stderr
    return r


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.mseed"))}


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    run("synth", "--hours", 1, "--out", out, "--seed", 2)
    return out / "mixture.mseed"


@pytest.fixture(scope="module")
def separated(record, tmp_path_factory) -> Path:
    """A template separation with non-default options (method option, dtype, location, gap policy)."""
    out = tmp_path_factory.mktemp("sep1")
    run("separate", record, "--out", out, "--method", "template", "--template-opt", "min_variance_reduction=0.6",
        "--dtype", "float32", "--location", "background=B9", "--gap-policy", "fill", "--max-fill", 5)
    return out


def configuration(folder: Path) -> dict:
    (prov,) = folder.glob("*.provenance.json")
    return json.loads(prov.read_text())["configuration"]


def test_config_file_sets_options_and_command_line_wins(record, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('quiet = true\n[separate]\ndtype = "float32"\nlocation = "background=B7"\n'
                   'template-opt = ["min_variance_reduction=0.6"]\n')
    r = run("--config", cfg, "separate", record, "--out", tmp_path / "a", "--location", "background=B8")
    assert r.stderr == ""  # quiet = true from the file
    conf = configuration(tmp_path / "a")
    assert conf["dtype"] == "float32" and conf["options"] == {"min_variance_reduction": 0.6}
    assert conf["locations"] == {"background": "B8"}  # the command line wins over the file


@pytest.mark.parametrize("text, expect", [
    ('[separate]\ndtyp = "float32"\n', "unknown key '[separate] dtyp'; valid: "),
    ('[separat]\ndtype = "float32"\n', "unknown command table 'separat'; valid: "),
    ('verbos = 1\n', "unknown key 'verbos'; valid: "),
    ('[separate]\ndtype = "float16"\n', "[separate] dtype: 'float16' is not one of"),
    ('[features]\nwindow = -3\n', "[features] window: -3 is not in the range"),
    ('[separate]\ndtype = "float32\n', "not a valid TOML file"),
    ('\x00\xff', "not a valid TOML file"),
])
def test_bad_config_is_one_line_naming_file_and_key(record, tmp_path, text, expect):
    cfg = tmp_path / "run.toml"
    cfg.write_bytes(text.encode("latin-1"))
    r = run("--config", cfg, "separate", record, "--out", tmp_path / "o", code=2)
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith(f"error: {cfg}: "), r.stderr
    assert expect in r.stderr
    if "valid: " in expect:
        assert ("dtype" in r.stderr) if "[separate]" in expect else ("separate" in r.stderr)
    assert not (tmp_path / "o").exists()


def test_replay_gives_the_same_outputs(separated, tmp_path):
    (prov,) = separated.glob("*.provenance.json")
    run("separate", "--replay", prov, "--out", tmp_path / "again")
    assert digests(tmp_path / "again") == digests(separated) and len(digests(separated)) == 3
    assert configuration(tmp_path / "again") == configuration(separated)


@pytest.mark.parametrize("method_args", [
    ["--method", "hybrid", "--hybrid-opt", "residual=none", "--format", "SAC"],
    ["--method", "scatcov", "--prior", "PRIOR", "--scatcov-opt", "n_prior=4", "--scatcov-opt", "max_iter=2"],
], ids=["hybrid", "scatcov-prior"])
def test_replay_of_other_methods(record, tmp_path, method_args):
    """Hybrid (method options, SAC) and scatcov with a prior file (its snippet count is recovered from the
    provenance) replay to the same bytes."""
    prior = tmp_path / "prior"
    run("synth", "--hours", 1, "--out", prior, "--seed", 9)
    args = [str(prior / "background.mseed") if a == "PRIOR" else a for a in method_args]
    run("separate", record, "--out", tmp_path / "a", "--device", "cpu", *args)
    (prov,) = (tmp_path / "a").glob("*.provenance.json")
    run("separate", "--replay", prov, "--out", tmp_path / "b")
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "a").iterdir()
             if p.suffix != ".json"}
    assert files and files == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "b").iterdir()
                               if p.suffix != ".json"}
    assert configuration(tmp_path / "a") == configuration(tmp_path / "b")


def test_replay_of_a_provenance_from_before_the_detrend_was_recorded(record, tmp_path):
    """scatcov's 'fast' protocol took the spline detrend after provenance files without the key were written: their
    replay runs without it, as they did (the method's ``unrecorded`` values)."""
    prior = tmp_path / "prior"
    run("synth", "--hours", 1, "--out", prior, "--seed", 9)
    base = ["--method", "scatcov", "--prior", prior / "background.mseed", "--scatcov-opt", "n_prior=4",
            "--scatcov-opt", "max_iter=2", "--device", "cpu"]
    run("separate", record, "--out", tmp_path / "none", *base, "--scatcov-opt", "detrend=none")
    run("separate", record, "--out", tmp_path / "now", *base)
    (prov,) = (tmp_path / "none").glob("*.provenance.json")
    data = json.loads(prov.read_text())
    options = data["configuration"]["options"]
    assert options["detrend"] == "none" and options["protocol"] == "fast"
    for key in ("protocol", "detrend", "hold_mean"):
        del options[key]
    old = tmp_path / "old.provenance.json"
    old.write_text(json.dumps(data))
    run("separate", "--replay", old, "--out", tmp_path / "replayed")

    def products(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.suffix != ".json"}

    assert products(tmp_path / "replayed") == products(tmp_path / "none")
    assert products(tmp_path / "now") != products(tmp_path / "none")  # the default does detrend now
    assert configuration(tmp_path / "now")["options"]["detrend"] == "spline"


def test_replay_on_new_inputs_and_options_given_win(separated, record, tmp_path):
    (prov,) = separated.glob("*.provenance.json")
    other = tmp_path / "other.mseed"
    other.write_bytes(record.read_bytes())
    run("separate", "--replay", prov, other, "--out", tmp_path / "o", "--dtype", "float64")
    conf = configuration(tmp_path / "o")
    assert conf["dtype"] == "float64" and conf["locations"] == {"background": "B9"}
    assert json.loads(next((tmp_path / "o").glob("*.provenance.json")).read_text())["input"] == str(other)


def test_replay_wins_over_a_config_file(separated, tmp_path):
    """A value the run left at its default (no resampling) is not filled in from a configuration file."""
    (prov,) = separated.glob("*.provenance.json")
    cfg = tmp_path / "run.toml"
    cfg.write_text('[separate]\nresample = 10.0\ndtype = "float64"\n')
    run("--config", cfg, "separate", "--replay", prov, "--out", tmp_path / "o")
    assert configuration(tmp_path / "o") == configuration(separated)


def test_replay_of_another_version_warns(separated, tmp_path):
    (prov,) = separated.glob("*.provenance.json")
    old = tmp_path / "old.provenance.json"
    old.write_text(prov.read_text().replace(f'"version": "{__version__}"', '"version": "0.0.1"'))
    r = run("separate", "--replay", old, "--out", tmp_path / "o")
    assert r.stderr.splitlines()[0] == f"warning: {old} was written by Unmix 0.0.1; this is Unmix {__version__}: " \
                                       "outputs may differ"
    assert digests(tmp_path / "o") == digests(separated)


def _damage(prov: dict, how: str, record: Path) -> dict | list | str:
    conf = prov["configuration"]
    if how == "not-unmix":
        prov["tool"] = "obspy"
    elif how == "list":
        return [prov]
    elif how == "method":
        conf["method"] = "template; rm -rf /"
    elif how == "option-name":
        conf["options"]["__import__('os')"] = 1
    elif how == "options-type":
        conf["options"] = "min_variance_reduction=0.6"
    elif how == "dtype":
        conf["dtype"] = "int8"
    elif how == "locations":
        conf["locations"] = {"background": ["B9"]}
    elif how == "max-fill":
        conf["max_fill"] = "5; echo"
    elif how == "input-changed":
        prov["input_sha256"] = "0" * 64
    elif how == "input-missing":
        prov["input"] = str(record.with_name("gone.mseed"))
    elif how == "prior-missing":
        conf["model"] = {"prior_file": "/nonexistent/prior.mseed", "prior_sha256": "0" * 64}
    elif how == "model-type":
        conf["model"] = ["path"]
    return prov


@pytest.mark.parametrize("how, expect", [
    ("not-unmix", "not an Unmix provenance"), ("list", "not an Unmix provenance"),
    ("method", "method: 'template; rm -rf /' is not one of"), ("option-name", "damaged provenance: option name"),
    ("options-type", "damaged provenance: configuration.options"), ("dtype", "dtype: 'int8' is not one of"),
    ("locations", "damaged provenance: configuration.locations"), ("max-fill", "max_fill: '5; echo' is not a valid"),
    ("input-changed", "has changed since the run"), ("input-missing", "no longer exists"),
    ("prior-missing", "no longer exists"), ("model-type", "configuration.model is not an object"),
    ("truncated", "not a JSON provenance file"), ("binary", "not a JSON provenance file"),
])
def test_damaged_or_hostile_provenance_is_one_line(separated, record, tmp_path, how, expect):
    (prov,) = separated.glob("*.provenance.json")
    bad = tmp_path / "bad.provenance.json"
    if how == "truncated":
        bad.write_text(prov.read_text()[:200])
    elif how == "binary":
        bad.write_bytes(b"\xff\xfe\x00" * 50)
    else:
        bad.write_text(json.dumps(_damage(json.loads(prov.read_text()), how, record)))
    before = digests(separated)
    r = run("separate", "--replay", bad, "--out", tmp_path / "o", code=2)
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ") and expect in lines[0], r.stderr
    assert not (tmp_path / "o").exists() and digests(separated) == before


def test_features_replay_from_the_store(record, tmp_path):
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    opts = ["--window", 4096, "--hop", 2048, "--scales", "1024,4096", "--J", 6, "--gap-policy", "fill", "--device",
            "cpu"]
    run("features", record, "--out", first, *opts)
    run("features", "--replay", first, "--out", second, "--device", "cpu")
    import numpy as np

    from unmix.features import FeatureStore

    a, b = FeatureStore(first), FeatureStore(second)
    assert a.config == b.config and a.config.J == 6
    for s in a.scales:
        assert np.array_equal(a.features(s), b.features(s))
    r = run("features", "--replay", tmp_path / "nothing.h5", "--out", tmp_path / "c.h5", code=2)
    assert r.stderr.strip() == f"error: {tmp_path / 'nothing.h5'}: no such feature store"
