"""The installation self-test (``unmix --self-test``) and the packaged bundle (``packaging/``)."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import obspy
import pytest
from click.testing import CliRunner

from unmix import selftest
from unmix.cli import main
from unmix.errors import OutputExistsError

ROOT = Path(__file__).resolve().parents[1]


def _report(out: Path) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads((out / "report.json").read_text())["checks"]}


@pytest.mark.gui
def test_selftest_runs_every_check_in_process(tmp_path):
    pytest.importorskip("PySide6")
    lines: list[str] = []
    status = selftest.run(tmp_path / "out", echo=lines.append, cli=main)
    checks = _report(tmp_path / "out")
    assert list(checks) == [name for name, _, _ in selftest.CHECKS]
    failed = {name: c["detail"] for name, c in checks.items() if not c["ok"]}
    assert not failed, failed
    assert status == 0
    assert lines[-1].startswith(f"self-test passed: {len(selftest.CHECKS)}/{len(selftest.CHECKS)}")
    assert (tmp_path / "out" / "main-window.png").stat().st_size > 10_000
    assert "identical samples" in checks["miniSEED read/write"]["detail"]


def test_missing_component_is_a_failure_not_a_pass(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "unmix.model", None)  # as if the model package were not in the installation
    lines: list[str] = []
    status = selftest.run(tmp_path / "out", echo=lines.append, only=["training (2 steps)"])
    checks = _report(tmp_path / "out")
    assert status == 1
    assert checks["features (HDF5 store)"]["ok"]
    assert not checks["training (2 steps)"]["ok"]
    assert "not available" in checks["training (2 steps)"]["detail"]
    assert any(line.startswith("FAIL  training") for line in lines)
    assert lines[-1].startswith("self-test FAILED")


def test_failing_prerequisite_skips_dependants_as_failures(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("libmseed could not be loaded")

    checks = [(n, broken if n == "miniSEED read/write" else f, needs) for n, f, needs in selftest.CHECKS]
    monkeypatch.setattr(selftest, "CHECKS", checks)
    status = selftest.run(tmp_path / "out", echo=lambda _line: None, only=["features (HDF5 store)"])
    report = _report(tmp_path / "out")
    assert status == 1
    assert report["miniSEED read/write"]["detail"].startswith("RuntimeError: libmseed could not be loaded")
    assert not report["features (HDF5 store)"]["ok"]
    assert "skipped: needs miniSEED read/write" in report["features (HDF5 store)"]["detail"]


def test_frozen_environment_check_detects_modules_from_outside_the_bundle(tmp_path, monkeypatch):
    ctx = selftest._Context(out=tmp_path, device="cpu")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    with pytest.raises(selftest.CheckFailed, match="loaded from outside the bundle"):
        selftest.check_environment(ctx)
    with pytest.raises(selftest.CheckFailed, match="loaded from outside the bundle"):
        selftest.check_isolation(ctx)
    monkeypatch.setattr(sys, "_MEIPASS", "/", raising=False)
    assert "frozen bundle /" in selftest.check_environment(ctx)
    assert "come from the bundle" in selftest.check_isolation(ctx)


def test_selftest_refuses_a_non_empty_output_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        selftest.run(tmp_path)
    result = CliRunner().invoke(main, ["--self-test", "--self-test-out", str(tmp_path)])
    assert result.exit_code == 2
    assert "error:" in result.output and "not empty" in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_group_without_self_test_still_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "--self-test" in result.output and "features" in result.output
    assert CliRunner().invoke(main, ["info", "--help"]).exit_code == 0


def test_obspy_hook_covers_every_plugin_entry_point():
    """Reading, writing, filtering, detrending... dispatch through ObsPy's entry points: each target is collected."""
    collected = ("obspy.io.", "obspy.signal.", "obspy.core.")
    hook = (ROOT / "packaging" / "hooks" / "hook-obspy.py").read_text()
    named_in_hook = {"numpy"} | {m for m in ("scipy.signal", "scipy.signal.windows") if f'"{m}"' in hook}
    eps = importlib.metadata.entry_points()
    points = [ep for group in eps.groups if group.startswith("obspy.plugin") for ep in eps.select(group=group)]
    assert len(points) > 100, "obspy's entry points are missing: is its metadata installed?"
    groups = {ep.group for ep in points}
    assert {"obspy.plugin.waveform.MSEED", "obspy.plugin.waveform.SAC", "obspy.plugin.filter",
            "obspy.plugin.detrend", "obspy.plugin.inventory.STATIONXML"} <= groups
    for ep in points:
        assert ep.module.startswith(collected) or ep.module in named_in_hook, \
            f"{ep.group}:{ep.name} → {ep.module} is not collected by packaging/hooks/hook-obspy.py"
    assert 'copy_metadata("obspy")' in hook
    # ObsPy's ctypes libraries (obspy/lib/mseed.cpython-*.so, ...) are not named lib*.so, PyInstaller's default
    assert sorted((Path(obspy.__file__).parent / "lib").glob("*.so"))
    assert 'collect_dynamic_libs("obspy", search_patterns=["*.so"' in hook


def test_build_scripts_are_valid_bash_and_the_spec_is_python():
    for script in ("build.sh", "selftest_bundle.sh", "install.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "packaging" / script)], check=True)
    compile((ROOT / "packaging" / "unmix.spec").read_text(), "unmix.spec", "exec")


@pytest.mark.slow
@pytest.mark.packaging
@pytest.mark.skipif(os.environ.get("UNMIX_BUILD_BUNDLE") != "1",
                    reason="release step: set UNMIX_BUILD_BUNDLE=1 to build the PyInstaller bundle (minutes)")
def test_build_bundle_and_run_its_selftest_without_python():
    result = subprocess.run(["bash", str(ROOT / "packaging" / "build.sh")], capture_output=True, text=True,
                            timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[selftest] bundle self-test passed" in result.stdout
    assert "bundle size" in result.stdout


def _collection_modes() -> dict[str, str]:
    import ast

    tree = ast.parse((ROOT / "packaging" / "hooks" / "hook-obspy.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "module_collection_mode" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("hook-obspy.py sets no module_collection_mode")


def test_obspy_modules_that_find_data_from_their_code_file_name_ship_as_source():
    """Frozen into PyInstaller's archive a module's code object has a relative file name: ObsPy modules that locate
    their data with ``inspect.getfile(inspect.currentframe())`` looked in the current folder (KeyError: 'viridis')."""
    package = Path(obspy.__file__).parent
    not_bundled = {"taup", "clients"}  # not collected (Unmix's fetch uses clients.fdsn, which has no such lookup)
    no_data = {"core/util/misc.py", "core/util/testing.py", "conftest.py"}  # git root / test helpers only
    modes = _collection_modes()
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if "/tests/" in rel or rel.split("/")[0] in not_bundled or rel in no_data:
            continue
        if "inspect.currentframe()" in path.read_text(encoding="utf-8", errors="replace"):
            name = "obspy." + rel[:-3].replace("/", ".")
            found.append(name)
            assert modes.get(name) == "py", f"{name} finds its data from its code object's file name: ship it as 'py'"
    assert "obspy.imaging.cm" in found and "obspy.core.util.version" in found


def test_fdsn_loopback_answers_like_a_data_centre(tmp_path):
    from urllib.error import HTTPError
    from urllib.request import urlopen

    from unmix.fdsn_loopback import FdsnLoopback
    from unmix.synthetic import SyntheticConfig, generate

    rec = generate(SyntheticConfig(hours=0.2, sampling_rate=20.0, seed=3))
    path = rec.write(tmp_path, format="MSEED")["mixture"]
    tr = rec.mixture[0]
    net, sta, loc, cha = tr.id.split(".")
    t0 = tr.stats.starttime
    with FdsnLoopback([path]) as server:
        base = f"{server.url}/fdsnws"
        query = f"network={net}&station={sta}&location={loc}&channel={cha}&starttime={t0 + 60}&endtime={t0 + 120}"
        with urlopen(f"{base}/dataselect/1/query?{query}") as reply:
            got = obspy.read(io.BytesIO(reply.read()), format="MSEED")
        assert {t.id for t in got} == {tr.id}
        assert got[0].stats.starttime <= t0 + 60 and got[0].stats.endtime >= t0 + 120
        with urlopen(f"{base}/station/1/query?{query}&level=response") as reply:
            inv = obspy.read_inventory(io.BytesIO(reply.read()), format="STATIONXML")
        assert inv.get_contents()["channels"] == [tr.id]
        with urlopen(f"{base}/dataselect/1/query?network=ZZ&starttime={t0}&endtime={t0 + 60}") as reply:
            assert reply.status == 204
        with pytest.raises(HTTPError, match="404"):
            urlopen(f"{base}/event/1/query")


def test_a_separation_method_that_cannot_load_is_a_failed_check(tmp_path, monkeypatch):
    """As in the bundle without ObsPy's colormaps: the template method cannot be imported → a FAIL line."""
    import unmix.baselines  # noqa: F401  (registers the template method)
    from unmix.separation import result

    def broken(**_options):
        raise KeyError("viridis")  # what ObsPy's colormap module raised in the bundle without its data

    monkeypatch.setitem(result.METHODS, "template", broken)
    lines: list[str] = []
    status = selftest.run(tmp_path / "out", echo=lines.append, only=["separate template"], cli=main)
    checks = _report(tmp_path / "out")
    assert status == 1
    assert not checks["separate template"]["ok"]
    assert any(line.startswith("FAIL  separate template") for line in lines)
    assert "viridis" in checks["separate template"]["detail"]
