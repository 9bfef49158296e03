"""One import name, ``unmix`` (issue #15): core/ and app/ are installed as ``unmix`` and ``unmix.gui``."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> tuple[dict[str, str], list[str]]:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return tool["package-dir"], tool["packages"]


def test_every_package_folder_is_listed_under_its_unmix_name():
    mapping, packages = _declared()
    assert mapping == {"unmix": "core", "unmix.gui": "app", "unmix.gui.resources": "resources"}
    found = []
    for name, folder in mapping.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.append(".".join((name, *rel)))
    assert sorted(packages) == sorted(set(found))


def test_no_module_imports_core_or_app_by_their_folder_names():
    bad = []
    for path in [*ROOT.glob("core/**/*.py"), *ROOT.glob("app/**/*.py"), *ROOT.glob("tests/**/*.py"),
                 *ROOT.glob("packaging/**/*.py"), *ROOT.glob("benchmarks/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            bad += [f"{path}:{node.lineno} {n}" for n in names if n.split(".")[0] in ("core", "app")]
    assert not bad, "\n".join(bad)


def test_unmix_imports_from_a_folder_with_its_own_core_and_app(tmp_path):
    for name in ("core", "app"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the unrelated local package was imported')\n")
    code = ("import unmix, unmix.gui, unmix.cli, unmix.io, unmix.features;"
            "from unmix.features import build_store; print(unmix.__version__, unmix.__file__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    version, where = proc.stdout.split()
    assert version and Path(where).resolve() == (ROOT / "core" / "__init__.py").resolve()


def test_the_wheel_installs_only_unmix(tmp_path):
    src = tmp_path / "src"  # a clean copy: a build/ folder left in the checkout would leak old files into the wheel
    for name in ("core", "app", "resources"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("unmix-*.whl")
    with zipfile.ZipFile(wheel) as z:
        top = {n.split("/")[0] for n in z.namelist()}
        names = set(z.namelist())
    assert {t for t in top if not t.endswith(".dist-info")} == {"unmix"}
    assert {"unmix/__init__.py", "unmix/cli/__init__.py", "unmix/gui/__init__.py", "unmix/gui/views/__init__.py",
            "unmix/py.typed", "unmix/gui/resources/icons/unmix.svg", "unmix/gui/resources/icons/unmix-512.png",
            "unmix/gui/resources/io.github.unmix.Unmix.desktop",
            "unmix/gui/resources/io.github.unmix.Unmix.metainfo.xml"} <= names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as z:
        scripts = z.read(entry).decode()
    assert "unmix = unmix.cli:main" in scripts and "unmix-gui = unmix.gui.main:main" in scripts
