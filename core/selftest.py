"""Self-test of an installation (``unmix --self-test``), above all of the packaged bundle on a machine without Python.

On a one-hour synthetic InSight-like record with glitches it exercises what users do and what packaging can break:
miniSEED and SAC round trips through ObsPy's plug-ins and C libraries, scattering-covariance features into an HDF5
store (PyTorch, h5py), two training steps of the clustering model, then through the ``unmix`` commands themselves
(run in this process): ``cluster``, ``report`` (matplotlib figures), ``separate`` with every method (template,
highpass, scatcov, hybrid; ObsPy's signal and imaging modules and their data files) on ten minutes of the record,
``fetch`` from an FDSN web service started on 127.0.0.1 (``unmix.fdsn_loopback``), and the main window rendered
offscreen (Qt platform plugins, pyqtgraph) to a screenshot. Each check prints one line; a check whose component is
missing is a failure, never a pass. When frozen it also verifies that every loaded Python module comes from inside the
bundle. About 30-40 s on two cores."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unmix import __version__
from unmix.errors import OutputExistsError

FEATURE_SETTINGS = {"window": 8192, "hop": 2048, "scales": (1024, 2048, 4096, 8192), "J": 8}
"""Small windows so that a one-hour 20-sps record gives a few dozen windows in seconds on one core."""


class CheckFailed(Exception):
    """A check ran but its result is wrong (the message says what)."""


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class _Context:
    out: Path
    device: str
    cli: Any = None  # the ``unmix`` click group the command checks drive (given by the CLI, which imports this module)
    state: dict = field(default_factory=dict)


def _frozen_root() -> Path | None:
    root = getattr(sys, "_MEIPASS", None)
    return Path(root).resolve() if getattr(sys, "frozen", False) and root else None


def _outside_bundle(root: Path) -> list[str]:
    """Loaded modules and libpython mappings whose files lie outside the bundle ``root``."""
    outside = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and not (root / path).resolve().is_relative_to(root):  # relative: inside base_library.zip
            outside.append(f"{name} ({path})")
    maps = Path("/proc/self/maps")
    if maps.exists():
        libs = {line.split()[-1] for line in maps.read_text().splitlines() if "libpython" in line}
        outside += [lib for lib in libs if lib.startswith("/") and not Path(lib).resolve().is_relative_to(root)]
    return outside


def check_environment(ctx: _Context) -> str:
    """Which interpreter and libraries run; in a bundle, that nothing imported so far comes from outside it."""
    import obspy
    import torch

    if not obspy.__version__:
        raise CheckFailed("ObsPy cannot determine its version (its RELEASE-VERSION file was not found)")
    base = (f"python {platform.python_version()}, torch {torch.__version__}, obspy {obspy.__version__}, "
            f"{platform.system()} {platform.machine()}")
    root = _frozen_root()
    if root is None:
        return f"{base}, not frozen ({sys.executable})"
    outside = _outside_bundle(root)
    if outside:
        raise CheckFailed(f"{len(outside)} modules/libraries loaded from outside the bundle, e.g. {outside[0]}")
    return f"{base}, frozen bundle {root}"


def check_isolation(ctx: _Context) -> str:
    """After every other check: in a bundle, every module loaded (Qt, model, separation...) comes from it."""
    root = _frozen_root()
    if root is None:
        return f"not frozen: {len(sys.modules)} modules from {sys.prefix} (nothing to isolate)"
    outside = _outside_bundle(root)
    if outside:
        raise CheckFailed(f"{len(outside)} modules/libraries loaded from outside the bundle, e.g. {outside[0]}")
    return f"all {len(sys.modules)} loaded modules and libpython come from the bundle"


def check_synthetic(ctx: _Context) -> str:
    """A one-hour synthetic record with glitches (the data every later check uses)."""
    from unmix.synthetic import SyntheticConfig, generate

    rec = generate(SyntheticConfig(hours=1.0, sampling_rate=20.0, seed=7, glitch_rate_per_sol=600.0,
                                   start="2019-05-22T06:00:00"))
    ctx.state["synthetic"] = rec
    return f"{len(rec.mixture)} traces × {rec.mixture[0].stats.npts} samples, {len(rec.glitches)} glitches/spikes"


def _compare(read, written, what: str, rtol: float) -> None:
    if sorted(tr.id for tr in read.stream) != sorted(tr.id for tr in written):
        raise CheckFailed(f"{what}: ids {[tr.id for tr in read.stream]} != {[tr.id for tr in written]}")
    for tr in written:
        got = read.stream.select(id=tr.id)[0]
        if abs(got.stats.starttime - tr.stats.starttime) > 1e-6 or got.stats.npts != tr.stats.npts:
            raise CheckFailed(f"{what}: {tr.id} read back with a different start or length")
        scale = float(np.max(np.abs(tr.data))) or 1.0
        err = float(np.max(np.abs(got.data.astype(np.float64) - tr.data))) / scale
        if err > rtol:
            raise CheckFailed(f"{what}: {tr.id} differs after the round trip (max relative error {err:.2e})")


def check_mseed(ctx: _Context) -> str:
    """Write the mixture as miniSEED (ObsPy, libmseed) and read it back as a record."""
    from unmix.io import read_record

    rec = ctx.state["synthetic"]
    folder = ctx.out / "data-mseed"
    paths = rec.write(folder, format="MSEED")
    record = read_record(paths["mixture"])
    _compare(record, rec.mixture, "miniSEED", 1e-12)
    ctx.state["mseed"] = paths["mixture"]
    ctx.state["record"] = record
    return f"{paths['mixture'].name}: {record.components} at {record.sampling_rate:g} Hz, identical samples"


def check_sac(ctx: _Context) -> str:
    """Write the mixture as SAC (one file per trace) and read the three files back as one record."""
    from unmix.io import read_record

    rec = ctx.state["synthetic"]
    folder = ctx.out / "data-sac"
    paths = rec.write(folder, format="SAC")
    files = [p for stem, p in paths.items() if stem.startswith("mixture.")]
    record = read_record(files)
    _compare(record, rec.mixture, "SAC", 1e-6)  # SAC stores float32
    return f"{len(files)} SAC files read back as {record.key} (float32 precision)"


def check_features(ctx: _Context) -> str:
    """Scattering-covariance features of the miniSEED file into an HDF5 feature store."""
    from unmix.features import FeatureConfig, FeatureStore, build_store

    config = FeatureConfig(**FEATURE_SETTINGS)
    path = ctx.out / "features.h5"
    report = build_store([ctx.state["mseed"]], path, config, device=ctx.device)
    if report["failures"]:
        raise CheckFailed("; ".join(report["failures"]))
    store = FeatureStore(path)
    expected = (ctx.state["record"].npts // config.block - config.window // config.block) // (
        config.hop // config.block) + 1
    if store.n_windows != expected:
        raise CheckFailed(f"{store.n_windows} windows in the store, expected {expected}")
    shapes = []
    for s in config.scales:
        f = store.features(s)
        if not np.all(np.isfinite(f)):
            raise CheckFailed(f"non-finite features at scale {s}")
        shapes.append(f.shape)
    ctx.state["store"] = path
    return f"{store.n_windows} windows, scales {config.scales}, features {shapes[0]} per scale"


def check_training(ctx: _Context) -> str:
    """Two optimisation steps of the factorial GMVAE on the store, a checkpoint reloaded, every window clustered."""
    try:
        from unmix.model import Training, load_model, predict, preset
    except ImportError as exc:
        raise CheckFailed(f"not available: the model's training API is missing ({exc})") from None
    from unmix.features import FeatureStore

    store = FeatureStore(ctx.state["store"])
    config = preset("small", epochs=1, val_fraction=0.0, clusters=3, hidden=32, latent=4, checkpoint_every=1)
    n_train = store.n_windows
    config = config.replace(batch_size=n_train // 2)  # one epoch = two optimisation steps per ensemble member
    steps: list[str] = []

    def progress(fraction: float, message: str = "") -> None:
        if "step" in message:
            steps.append(message)

    path = ctx.out / "model.pt"
    training = Training(store, path, config, device=ctx.device, progress=progress)
    logs = list(training)
    if len(steps) != 2 * config.ensemble:
        raise CheckFailed(f"expected 2 optimisation steps per member ({config.ensemble} members), the loop reported "
                          f"{len(steps)}: {steps}")
    loss = logs[-1]["loss"]
    if not np.isfinite(loss):
        raise CheckFailed(f"the training loss is not finite ({loss})")
    model = load_model(path, "cpu")
    table = predict(store, model, device=ctx.device)
    if table.n_windows != store.n_windows or not np.all(np.isfinite(table.probabilities)):
        raise CheckFailed(f"clustering gave {table.n_windows} windows for {store.n_windows} in the store")
    ctx.state["model"], ctx.state["clusters"] = path, table
    return (f"2 steps, loss {loss:.4g}, checkpoint {path.name} reloaded, {table.n_windows} windows × "
            f"{len(table.scales)} scales clustered")


def _cli(cli, args: list) -> tuple[int, str]:
    """Run one ``unmix`` command in this process as a user would; (exit status, its output, stdout then stderr)."""
    import contextlib
    import io

    if cli is None:
        raise CheckFailed("no command line given to the self-test (run it as `unmix --self-test`)")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(args=[str(a) for a in args], prog_name="unmix", standalone_mode=False)
        except SystemExit as exc:
            status = exc.code
    status = status if isinstance(status, int) else 0 if status is None else 1
    return status, (out.getvalue() + err.getvalue()).strip()


def _run_cli(ctx: _Context, args: list) -> str:
    """``_cli`` that raises :class:`CheckFailed` (with the command's last line) unless it exits with status 0."""
    status, text = _cli(ctx.cli, args)
    if status != 0:
        lines = text.splitlines() or ["no output"]
        first = next((line for line in lines if line.startswith(("failed:", "error:"))), lines[-1])
        raise CheckFailed(f"`unmix {args[0]}` exited with status {status}: {first}")
    return text


def _short_record(ctx: _Context) -> Path:
    """Ten minutes of the synthetic record around its first glitch, as miniSEED (the input of every separation)."""
    if "short" not in ctx.state:
        rec = ctx.state["synthetic"]
        t0 = rec.mixture[0].stats.starttime
        first = min((g.onset for g in rec.glitches if g.onset > t0 + 60), default=t0 + 60)
        start = min(first - 60, t0 + rec.config.duration - 600)
        path = ctx.out / "separate-input" / "short.mseed"
        path.parent.mkdir()
        rec.mixture.slice(start, start + 600).write(str(path), format="MSEED")
        ctx.state["short"] = path
    return ctx.state["short"]


def _by_component(stream) -> dict[str, np.ndarray]:
    return {tr.stats.channel[-1]: tr.data.astype(np.float64) for tr in stream}


def _check_parts_add_up(source: Path, outputs: list[Path]) -> tuple[int, float]:
    """Every output trace has the input's length; the outputs add up to the input. (files, removed share)."""
    from obspy import read

    wanted = _by_component(read(str(source), format="MSEED"))
    total = {c: np.zeros_like(x) for c, x in wanted.items()}
    removed = 0.0
    for path in outputs:
        for c, x in _by_component(read(str(path), format="MSEED")).items():
            if c not in wanted or x.shape != wanted[c].shape or not np.all(np.isfinite(x)):
                raise CheckFailed(f"{path.name}: component {c} is not a finite trace of the input's length")
            total[c] += x
            if ".background." not in path.name:
                removed += float(np.sum(x ** 2))
    scale = max(float(np.max(np.abs(x))) for x in wanted.values()) or 1.0
    worst = max(float(np.max(np.abs(total[c] - wanted[c]))) for c in wanted) / scale
    if worst > 1e-5:
        raise CheckFailed(f"the outputs do not add up to the input (max relative error {worst:.1e})")
    return len(outputs), removed / max(sum(float(np.sum(x ** 2)) for x in wanted.values()), 1e-300)


def _separate(ctx: _Context, method: str, *options: str, must_remove: bool = True) -> str:
    """``unmix separate`` of the short record with ``method``; its outputs are checked and must add up to it."""
    source = _short_record(ctx)
    out = ctx.out / f"separate-{method}"
    _run_cli(ctx, ["separate", source, "--out", out, "--method", method, "--device", ctx.device, *options])
    provenance = sorted(out.glob("*.provenance.json"))
    if len(provenance) != 1 or json.loads(provenance[0].read_text()).get("method") != method:
        raise CheckFailed(f"expected one provenance file of method {method} in {out}, found {len(provenance)}")
    outputs = sorted(p for p in out.glob("*.mseed") if p.name.startswith(source.stem + "."))
    if not any(".background." in p.name for p in outputs):
        raise CheckFailed(f"no background output in {out}")
    n, share = _check_parts_add_up(source, outputs)
    if must_remove and share == 0:
        raise CheckFailed("nothing was removed from a record with glitches")
    return f"{n} outputs add up to the 10-min input, {100 * share:.2g}% of its energy removed, provenance written"


def check_separate_template(ctx: _Context) -> str:
    """``unmix separate --method template`` (ObsPy signal processing, glitch templates)."""
    return _separate(ctx, "template")


def check_separate_highpass(ctx: _Context) -> str:
    """``unmix separate --method highpass``."""
    return _separate(ctx, "highpass")


def check_separate_scatcov(ctx: _Context) -> str:
    """``unmix separate --method scatcov`` with a clean file as prior (8 snippets, one L-BFGS iteration: ~10 s)."""
    prior = ctx.state["mseed"].parent / "background.mseed"
    return _separate(ctx, "scatcov", "--prior", prior, "--scatcov-opt", "max_iter=1", "--scatcov-opt", "n_prior=8",
                     must_remove=False)


def check_separate_hybrid(ctx: _Context) -> str:
    """``unmix separate --method hybrid`` (templates + scattering residual; one iteration)."""
    prior = ctx.state["mseed"].parent / "background.mseed"
    return _separate(ctx, "hybrid", "--prior", prior, "--hybrid-opt", "max_iter=1")


def check_cluster(ctx: _Context) -> str:
    """``unmix cluster`` of the store with the trained model into a cluster table (.h5), read back."""
    from unmix.clusters import ClusterTable

    path = ctx.out / "clusters.h5"
    _run_cli(ctx, ["cluster", ctx.state["store"], ctx.state["model"], "--out", path, "--device", ctx.device])
    table, expected = ClusterTable.load(path), ctx.state["clusters"].n_windows
    if table.n_windows != expected:
        raise CheckFailed(f"the table read back has {table.n_windows} windows, expected {expected}")
    return f"{path.name}: {table.n_windows} windows × {len(table.scales)} scales"


def check_report(ctx: _Context) -> str:
    """``unmix report``: the figures (matplotlib, ObsPy imaging data) and the summary of every scale."""
    out = ctx.out / "report"
    _run_cli(ctx, ["report", ctx.state["store"], ctx.state["model"], "--out", out, "--device", ctx.device])
    figures = sorted(out.glob("*.png"))
    summary = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    if summary is None or len(figures) < len(FEATURE_SETTINGS["scales"]):
        raise CheckFailed(f"the report holds {len(figures)} figures and {'a' if summary else 'no'} report.json")
    small = [p.name for p in figures if p.stat().st_size < 2000]
    if small:
        raise CheckFailed(f"empty-looking figures: {', '.join(small)}")
    return f"{len(figures)} figures and report.json in {out.name}/"


def check_fetch(ctx: _Context) -> str:
    """``unmix fetch`` from an FDSN web service on 127.0.0.1 started here; the day file must hold the same samples."""
    from obspy import read

    from unmix.fdsn_loopback import FdsnLoopback

    mixture = ctx.state["synthetic"].mixture
    net, sta, loc, cha = mixture[0].id.split(".")
    t0 = mixture[0].stats.starttime
    start, end = t0 + 300, t0 + 900
    out = ctx.out / "fetched"
    with FdsnLoopback([ctx.state["mseed"]]) as server:
        _run_cli(ctx, ["fetch", "-N", net, "-S", sta, "-L", loc or "--", "-C", cha[:2] + "?", "--start", start,
                  "--end", end, "--provider", server.url, "--out", out, "--timeout", "20", "-q"])
        n_requests = len(server.requests)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.parent.name.endswith(".D"))  # the SDS archive
    if not files or not any(p.suffix == ".xml" for p in out.iterdir()):
        raise CheckFailed(f"expected SDS day files and a StationXML in {out}, found {sorted(os.listdir(out))}")
    got = read(str(files[0]), format="MSEED")
    for f in files[1:]:
        got += read(str(f), format="MSEED")
    got.merge()
    for tr in mixture:
        piece = got.select(id=tr.id).slice(start, end)
        want = tr.slice(start, end)
        if len(piece) != 1 or piece[0].stats.npts != want.stats.npts or not np.array_equal(piece[0].data, want.data):
            raise CheckFailed(f"{tr.id}: the fetched samples differ from those served")
    return f"{len(files)} day file(s) + StationXML from {server.url} in {n_requests} HTTP requests, identical samples"


def check_gui(ctx: _Context) -> str:
    """The main window rendered offscreen with the miniSEED record loaded (``unmix.gui.selftest``), screenshot saved."""
    try:
        from unmix.gui.selftest import GuiCheckFailed, render_main_window
    except ImportError as exc:
        raise CheckFailed(f"not available: the desktop application cannot be imported ({exc})") from None
    try:
        return render_main_window(ctx.state["mseed"], ctx.out)
    except GuiCheckFailed as exc:
        raise CheckFailed(str(exc)) from None


CHECKS: list[tuple[str, Callable[[_Context], str], tuple[str, ...]]] = [
    ("environment", check_environment, ()),
    ("synthetic record", check_synthetic, ()),
    ("miniSEED read/write", check_mseed, ("synthetic record",)),
    ("SAC read/write", check_sac, ("synthetic record",)),
    ("features (HDF5 store)", check_features, ("miniSEED read/write",)),
    ("training (2 steps)", check_training, ("features (HDF5 store)",)),
    ("cluster table", check_cluster, ("training (2 steps)",)),
    ("report figures", check_report, ("training (2 steps)",)),
    ("separate template", check_separate_template, ("miniSEED read/write",)),
    ("separate highpass", check_separate_highpass, ("miniSEED read/write",)),
    ("separate scatcov", check_separate_scatcov, ("miniSEED read/write",)),
    ("separate hybrid", check_separate_hybrid, ("miniSEED read/write",)),
    ("FDSN fetch (loopback)", check_fetch, ("miniSEED read/write",)),
    ("GUI offscreen screenshot", check_gui, ("miniSEED read/write",)),
    ("bundle isolation", check_isolation, ()),
]
"""(name, function, names of checks whose results it needs)."""


def run(out: str | Path | None = None, device: str = "cpu", echo: Callable[[str], None] = print,
        only: list[str] | None = None, cli=None) -> int:
    """Run the checks, print one line each, write ``report.json`` in ``out``; 0 when all passed, else 1.

    ``out`` must be missing or empty (default: a new temporary folder, kept for the screenshot). ``only``
    restricts to the named checks (their prerequisites run too). ``cli`` is the ``unmix`` command group that the
    command checks (cluster, report, separate, fetch) run in this process; ``unmix --self-test`` passes itself.
    """
    import tempfile

    if out is None:
        out = Path(tempfile.mkdtemp(prefix="unmix-selftest-"))
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError("self-test output folder exists and is not empty", out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _Context(out=out, device=device, cli=cli)
    wanted = _with_prerequisites(only) if only else [name for name, _, _ in CHECKS]
    echo(f"unmix {__version__} self-test → {out}")
    results: list[CheckResult] = []
    passed: set[str] = set()
    for name, fn, needs in CHECKS:
        if name not in wanted:
            continue
        t0 = time.perf_counter()
        missing = [n for n in needs if n not in passed]
        if missing:
            result = CheckResult(name, False, f"skipped: needs {', '.join(missing)}", 0.0)
        else:
            try:
                result = CheckResult(name, True, fn(ctx), time.perf_counter() - t0)
            except CheckFailed as exc:
                result = CheckResult(name, False, str(exc), time.perf_counter() - t0)
            except Exception as exc:  # any crash is a failed check, with where it happened
                where = traceback.extract_tb(exc.__traceback__)[-1]
                result = CheckResult(name, False, f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:"
                                                  f"{where.lineno})", time.perf_counter() - t0)
        if result.ok:
            passed.add(name)
        echo(f"{'ok  ' if result.ok else 'FAIL'}  {name:<26} {result.detail}  [{result.seconds:.1f} s]")
        results.append(result)
    failed = [r.name for r in results if not r.ok]
    report = {"version": __version__, "frozen": _frozen_root() is not None, "python": platform.python_version(),
              "passed": not failed, "checks": [r.__dict__ for r in results]}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    echo(f"self-test {'passed' if not failed else 'FAILED'}: {len(results) - len(failed)}/{len(results)} checks"
         + (f" (failed: {', '.join(failed)})" if failed else ""))
    return 0 if not failed else 1


def _with_prerequisites(names: list[str]) -> list[str]:
    known = {name: needs for name, _, needs in CHECKS}
    unknown = [n for n in names if n not in known]
    if unknown:
        from unmix.errors import ConfigError

        raise ConfigError(f"unknown self-test check(s): {', '.join(unknown)} (known: {', '.join(known)})")
    todo, stack = set(), list(names)
    while stack:
        n = stack.pop()
        if n not in todo:
            todo.add(n)
            stack.extend(known[n])
    return [name for name, _, _ in CHECKS if name in todo]
