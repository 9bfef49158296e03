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
# Data ObsPy reads at run time: imaging/data (colormaps, loaded by obspy.imaging.cm, which obspy.signal imports: the
# template and hybrid methods need it), the StationXML/QuakeML/ArcLink schemas, SC3ML style sheets, core/data (FDSN
# service list, SEED tables), geodetics/data; ≈ 2.5 MiB of the ≈ 950 MiB bundle, so all of it rather than a list
# that a new ObsPy could outgrow. Not its test data, and not the TauP velocity models (taup/data, 1.5 MiB): Unmix
# never computes travel times, so obspy.taup is not in the bundle.
datas += collect_data_files("obspy", excludes=["**/tests/**", "**/tests", "**/test/**", "**/*.pyx", "**/*.c", "**/*.h",
                                               "taup/data/**", "taup/data"])
# Named like extension modules (mseed.cpython-311-x86_64-linux-gnu.so), which the default lib*.so pattern misses.
binaries = collect_dynamic_libs("obspy", search_patterns=["*.so", "*.dylib", "*.dll", "*.pyd"])
hiddenimports = (
    collect_submodules("obspy.io", filter=_wanted)
    + collect_submodules("obspy.signal", filter=_wanted)
    + collect_submodules("obspy.core", filter=_wanted)
    # detrend/taper entry points name SciPy functions directly
    + ["scipy.signal", "scipy.signal.windows"]
)
# Several ObsPy modules find their data from their own code object's file name
# (``inspect.getfile(inspect.currentframe())``), not from ``__file__``. PyInstaller stores modules in its archive with
# *relative* file names, which then resolve against the current directory: obspy.__version__ was None (RELEASE-VERSION
# not found) and ``import obspy.imaging.cm`` (imported by obspy.signal, hence by ``separate --method template`` and
# ``hybrid``) failed with KeyError: 'viridis' outside the source tree. Those modules are shipped as source files, whose
# file names are absolute; their data folders come with collect_data_files above (imaging/data 28 KiB, the
# StationXML/QuakeML/ArcLink schemas 350 KiB in all).
module_collection_mode = {
    "obspy.core.util.version": "py",  # RELEASE-VERSION
    "obspy.core.util.base": "py",  # get_script_dir_name()
    "obspy.imaging.cm": "py",  # imaging/data/*.npz, *.npy colormaps
    "obspy.io.stationxml.core": "py",  # data/fdsn-station-*.xsd (validation)
    "obspy.io.quakeml.core": "py",  # data/QuakeML-1.2.rng (validation)
    "obspy.io.arclink.inventory": "py",  # data/arclink_schema.xsd
}
