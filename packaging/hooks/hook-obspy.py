"""PyInstaller hook for ObsPy (none ships with PyInstaller or its contrib hooks).

ObsPy finds every waveform/inventory/event reader and writer, and the ``Trace.filter``/``detrend``/``taper``/...
functions, through entry points in its package metadata, and loads its C libraries (libmseed, signal) with ctypes
from ``obspy/lib``. So the bundle needs obspy's dist-info, the ``obspy.io`` plug-in modules that the entry points
name (static analysis cannot see them) and the shared libraries at their original place.
"""

from PyInstaller.utils.hooks import collect_data_files, collect_dynamic_libs, collect_submodules, copy_metadata


def _wanted(name: str) -> bool:
    return ".tests" not in name and not name.endswith(".tests")


datas = copy_metadata("obspy")
# Data ObsPy reads at run time (e.g. the SEED/StationXML schemas, the FDSN service list); never its test data.
datas += collect_data_files("obspy", excludes=["**/tests/**", "**/tests", "**/test/**", "**/*.pyx", "**/*.c", "**/*.h"])
# Named like extension modules (mseed.cpython-311-x86_64-linux-gnu.so), which the default lib*.so pattern misses.
binaries = collect_dynamic_libs("obspy", search_patterns=["*.so", "*.dylib", "*.dll", "*.pyd"])
hiddenimports = (
    collect_submodules("obspy.io", filter=_wanted)
    + collect_submodules("obspy.signal", filter=_wanted)
    + collect_submodules("obspy.core", filter=_wanted)
    # detrend/taper entry points name SciPy functions directly
    + ["scipy.signal", "scipy.signal.windows"]
)
# ObsPy finds its RELEASE-VERSION file from the path of obspy/core/util/version.py; frozen into the archive that path
# is relative and obspy.__version__ would be None (with a warning at every start): ship that module as a source file.
module_collection_mode = {"obspy.core.util.version": "py"}
