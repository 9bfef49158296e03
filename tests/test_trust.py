"""Untrusted input: no data file can run code (issue #14, item 1)."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from unmix.errors import InputFileError
from unmix.io import read_file, read_stream

ROOT = Path(__file__).resolve().parents[1]


class _Marker:
    """Unpickling this creates ``path``: the proof that a loader ran code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _hostile(path: Path, marker: Path) -> Path:
    # ObsPy's PICKLE detector only unpickles files whose first 100 bytes name obspy.core.stream
    path.write_bytes(pickle.dumps(("obspy.core.stream", _Marker(marker)), protocol=2))
    return path


def test_pickle_disguised_as_mseed_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    bad = _hostile(tmp_path / "x.mseed", marker)
    with pytest.raises(InputFileError, match="unknown or unsupported waveform format"):
        read_file(bad)
    with pytest.raises(InputFileError, match="refused"):
        read_file(bad, format="PICKLE")
    with pytest.raises(InputFileError):
        read_stream(tmp_path)  # a directory walk meets it too
    assert not marker.exists()


@pytest.mark.parametrize("command", [["info"],
                                     ["features", "--out", "{tmp}/s.h5"],
                                     ["separate", "--out", "{tmp}/sep", "--method", "highpass"]])
def test_cli_refuses_pickle_without_running_it(tmp_path, command):
    marker = tmp_path / "MARKER"
    (tmp_path / "data").mkdir()
    bad = _hostile(tmp_path / "data" / "x.mseed", marker)
    args = [a.format(tmp=tmp_path) for a in command]
    proc = subprocess.run([sys.executable, "-m", "unmix.cli", args[0], str(bad), *args[1:]], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert str(bad) in proc.stderr and "unsupported waveform format" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()
    assert not list(tmp_path.glob("s.h5*")) and not list(tmp_path.glob(".s.h5*"))  # features leaves nothing behind


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_no_unsafe_loader_in_the_code():
    """No pickle, no ``allow_pickle``, torch.load only with ``weights_only=True``, ObsPy ``read`` only with a format."""
    problems = []
    for path in [*ROOT.glob("core/**/*.py"), *ROOT.glob("app/**/*.py")]:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = {a.name for a in node.names}
                mod = getattr(node, "module", None) or ""
                if "pickle" in names or "dill" in names or mod in ("pickle", "dill") or "marshal" in names:
                    problems.append(f"{path}:{node.lineno} imports a pickle module")
        for call in _calls(tree):
            name = ast.unparse(call.func)
            kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
            if name.endswith("torch.load") and kw.get("weights_only") != "True":
                problems.append(f"{path}:{call.lineno} torch.load without weights_only=True")
            if name in ("read", "obspy.read", "read_events", "obspy.read_events") and "format" not in kw:
                problems.append(f"{path}:{call.lineno} ObsPy {name}() with format autodetection (unmix.io.read_file)")
            if kw.get("allow_pickle") not in (None, "False"):
                problems.append(f"{path}:{call.lineno} allow_pickle")
    assert not problems, "\n".join(problems)
