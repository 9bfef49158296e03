"""The notebook API, in the ObsPy and scikit-learn manner: ``unmix.read``, ``unmix.FactorialGMVAE``,
``unmix.get_separator`` and ``unmix.export`` (with :mod:`unmix.featureset`, :mod:`unmix.prior` and
:mod:`unmix.example_data`, re-exported flat by ``import unmix``). It wraps the code the command line runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.features import FeatureStore
from unmix.io.record import Record
from unmix.params import ParamsMixin
from unmix.prior import Prior
from unmix.separation.result import SeparationResult, Separator


def read(inputs: str | Path | Iterable[str | Path], gap_policy: str = "split", max_fill: int = 0,
         resample_to: float | None = None, format: str | None = None, allow_damaged: bool = False) -> list[Record]:
    """Read waveform files (files, folders, glob patterns) into records: one instrument's components over a
    common gap-free span each (``record.stream`` is an ObsPy Stream). Same rules as ``unmix info``.

    >>> import unmix
    >>> [r.key for r in unmix.read(unmix.example().path)]
    ['SY.ELYSE.02.BH']
    """
    from unmix.io import read_records

    return read_records(inputs, gap_policy, max_fill, resample_to, format, allow_damaged=allow_damaged)


def _store(features: FeatureStore | str | Path) -> FeatureStore:
    if isinstance(features, FeatureStore):
        return features
    if isinstance(features, str | Path):
        return FeatureStore(features)
    raise ConfigError(f"features must be a FeatureSet, a FeatureStore or a store path, got {type(features).__name__}")


class FactorialGMVAE(ParamsMixin):
    """The factorial Gaussian-mixture VAE as a scikit-learn style estimator: it clusters every window at every scale.

    ``preset`` (``'small'`` for CPU, ``'paper'`` for the published size) gives the configuration; ``clusters``,
    ``epochs``, ``latent``, ``hidden``, ``pca``, ``preprocessing``, ``log_offset``, ``outlier_split``,
    ``sparsity_split`` and ``seed``, when given, replace the preset's values (:class:`~unmix.model.ModelConfig` says
    what each does).
    ``checkpoint``: a path where :meth:`fit` writes the checkpoint (atomically; ``overwrite`` to replace one), as
    ``unmix train`` does; None keeps the model in memory only. Fitted attributes: ``model_`` (the
    :class:`~unmix.model.TrainedModel`), ``config_``, ``history_`` (one log per epoch), ``scales_``.
    """

    def __init__(self, preset: str = "small", clusters: int | None = None, epochs: int | None = None,
                 latent: int | None = None, hidden: int | None = None, pca: int | None = None,
                 preprocessing: str | None = None, log_offset: float | None = None,
                 outlier_split: float | None = None, sparsity_split: float | None = None, seed: int | None = None,
                 device: str = "auto",
                 checkpoint: str | Path | None = None, overwrite: bool = False) -> None:
        self.preset = preset
        self.clusters = clusters
        self.epochs = epochs
        self.latent = latent
        self.hidden = hidden
        self.pca = pca
        self.preprocessing = preprocessing
        self.log_offset = log_offset
        self.outlier_split = outlier_split
        self.sparsity_split = sparsity_split
        self.seed = seed
        self.device = device
        self.checkpoint = checkpoint
        self.overwrite = overwrite

    def _config(self):
        from unmix.model import preset

        return preset(self.preset, clusters=self.clusters, epochs=self.epochs, latent=self.latent,
                      hidden=self.hidden, pca=self.pca, preprocessing=self.preprocessing,
                      log_offset=self.log_offset, outlier_split=self.outlier_split,
                      sparsity_split=self.sparsity_split, seed=self.seed)

    def fit(self, features: FeatureStore | str | Path) -> FactorialGMVAE:
        """Train on ``features`` (a :class:`~unmix.FeatureSet`, a store or a store path); returns ``self``."""
        from unmix.model import Training

        training = Training(_store(features), self.checkpoint, self._config(), self.device,
                            overwrite=self.overwrite)
        self._set_model(training.run())
        return self

    def _set_model(self, model) -> None:
        self.model_ = model
        self.config_ = model.config
        self.history_ = list(model.logs)
        self.scales_ = tuple(model.scales)

    def predict(self, features: FeatureStore | str | Path) -> ClusterTable:
        """Cluster, confidence, posterior and latent of every window of ``features`` at every scale."""
        from unmix.model import predict

        if not hasattr(self, "model_"):
            raise ConfigError("this FactorialGMVAE is not fitted yet; call fit(features) or load(checkpoint) first")
        return predict(_store(features), self.model_, device=self.device)

    def fit_predict(self, features: FeatureStore | str | Path) -> ClusterTable:
        """:meth:`fit`, then :meth:`predict` on the same features."""
        store = _store(features)
        return self.fit(store).predict(store)

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto") -> FactorialGMVAE:
        """A fitted estimator from a checkpoint written by :meth:`fit` or ``unmix train``. Its parameters carry the
        checkpoint's sizes over the ``small`` preset; the checkpoint's full configuration is ``config_``."""
        from unmix.devices import resolve_device
        from unmix.model import load_model

        model = load_model(checkpoint, resolve_device(device))
        c = model.config
        est = cls(clusters=c.clusters, epochs=c.epochs, latent=c.latent, hidden=c.hidden, pca=c.pca,
                  preprocessing=c.preprocessing, log_offset=c.log_offset, outlier_split=c.outlier_split,
                  sparsity_split=c.sparsity_split, seed=c.seed, device=device, checkpoint=checkpoint)
        est._set_model(model)
        return est


def get_separator(method: str, prior: Prior | None = None, **options) -> Separator:
    """A configured separation method (``'template'``, ``'highpass'``, ``'scatcov'``, ``'hybrid'``, …);
    ``.separate(stream)`` returns a :class:`~unmix.separation.SeparationResult` of Streams.

    ``prior``: a :class:`~unmix.Prior` (or an array of snippets) for the methods that take one; ``options``: the
    method's own keyword arguments (an unknown name is a :class:`~unmix.errors.ConfigError` listing the valid ones).
    """
    from unmix.separation.registry import get_method, method_spec

    spec = method_spec(method)
    if prior is not None:
        if "prior" not in spec.option_names():
            raise ConfigError(f"method {method!r} takes no prior")
        options = (prior if isinstance(prior, Prior) else Prior.from_array(prior)).options() | options
    return get_method(method, **options)  # an unknown option: one line listing the registry's valid keys


def export(result: SeparationResult, folder: str | Path, stem: str = "separated", fmt: str = "MSEED",
           overwrite: bool = False, dtype: str = "float64", locations: dict[str, str] | str | None = None
           ) -> list[Path]:
    """Write ``result`` into ``folder`` as ``unmix separate`` does: ``<stem>.<source>.mseed`` (or SAC) per source,
    each with its derived location code and quality ``Q``, then ``<stem>.provenance.json``. Returns the paths."""
    from unmix.export import export_checked

    return export_checked(result, folder, stem, fmt, overwrite, dtype, locations)


__all__ = ["FactorialGMVAE", "export", "get_separator", "read"]
