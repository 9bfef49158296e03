"""The separation methods: one entry per method, the single source of the CLI's, GUI's and benchmarks' method lists.

Built-in methods are listed explicitly in :data:`BUILTIN` (imported lazily by dotted path; nothing registers itself
on import). Third-party methods register through the entry-point group ``unmix.separation_methods``, as ObsPy's
plugins do: the entry point's name is the method's name and its object a separator class (or a
:class:`MethodSpec`), e.g. in a plugin's ``pyproject.toml``::

    [project.entry-points."unmix.separation_methods"]
    mymethod = "mypackage.separator:MySeparator"

An option's type, default and help come from the separator's constructor signature and class docstring (and, for a
method with ``config_fields``, the fields and docstrings of its configuration dataclasses, accepted as flat keys).

A separator class is best a subclass of :class:`unmix.separation.base.BaseSeparator` (store the constructor's
arguments, implement ``_separate``): it gets ``get_params``/``set_params``, a configuration check before any work
(:func:`get_method` calls ``check_params``) and the method, parameters and timing in its result's provenance. Any
object with ``separate(stream, progress, token)`` (:class:`unmix.separation.result.Separator`) also works.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, fields
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any

from unmix.errors import ConfigError

GROUP = "unmix.separation_methods"
USES = ("prior", "inventory", "device")
"""What a method may take from the pipeline: a prior (snippets or background clusters), a StationXML, a device."""


@dataclass(frozen=True)
class OptionSpec:
    """One option of a method: ``--<method>-opt NAME=VALUE``."""

    name: str
    type: str
    default: Any
    help: str = ""

    def line(self) -> str:
        """``name (type, default …): help`` for listings."""
        text = repr(self.default)
        text = text if len(text) <= 40 else text[:37] + "..."
        default = "required" if self.default is inspect.Parameter.empty else f"default {text}"
        return f"{self.name} ({self.type}, {default})" + (f": {self.help}" if self.help else "")


COMMON_OPTIONS = (
    OptionSpec("protect", "str | list | None", None,
               "catalogue file (QuakeML, MPS list, Snuffler markers) or (start, end) pairs: events kept whole, only "
               "glitch/spike templates are removed inside them (unmix.separation.protect)"),
)
"""Options every method takes: :func:`get_method` applies them around the method itself."""


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _doc_help(doc: str, name: str) -> str:
    """The words that follow ````name```` in a docstring: its parenthesis, or up to the next ',', ';', '(' or '.'."""
    text = " ".join(doc.split())
    at = text.find(f"``{name}``")
    if at < 0:
        return ""
    rest = text[at + len(name) + 4:].lstrip()
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                return _sane(rest[1:i].strip())
        return ""
    cut = min((i for i in (rest.find(c) for c in (",", ";", "(", ". ", ":")) if i >= 0), default=len(rest))
    return _sane(rest[:cut].strip().rstrip(".")[:100])


def _sane(text: str) -> str:
    """``text``, or '' when it is a fragment (starts with punctuation, unbalanced brackets or quotes)."""
    if (not text or text[0] in ")-:," or text.count("``") % 2 or text.count("(") != text.count(")")
            or (text.startswith("``") and not text.startswith("``'"))):  # another option's name: not its help
        return ""
    return text


def _signature_options(factory: Callable) -> tuple[list[OptionSpec], bool]:
    """The keyword options of ``factory`` and whether it takes any keyword (``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return [], True
    doc = inspect.getdoc(factory) or ""
    opts = [OptionSpec(p.name, _type_name(p.annotation), p.default, _doc_help(doc, p.name)) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    return opts, any(p.kind is p.VAR_KEYWORD for p in params)


def _field_options(configs: dict[str, type]) -> list[OptionSpec]:
    """The fields of configuration dataclasses as flat options (help from ``metadata['help']`` or the docstring)."""
    out = []
    for cls in configs.values():
        for f in fields(cls):
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else inspect.Parameter.empty)
            help_ = f.metadata.get("help") or _doc_help(inspect.getdoc(cls) or "", f.name)
            out.append(OptionSpec(f.name, _type_name(f.type), default, help_))
    return out


@dataclass(frozen=True)
class MethodSpec:
    """A separation method: ``target`` is ``'module:Class'`` (or the factory itself); ``uses`` ⊆ :data:`USES`;
    ``requires_prior``: it cannot run without one; ``config_fields``: ``'module:DICT'`` of configuration
    dataclasses whose fields are accepted as flat option keys; ``help``: help of options the signature names."""

    name: str
    target: str | Callable
    description: str = ""
    label: str = ""
    uses: tuple[str, ...] = ()
    requires_prior: bool = False
    config_fields: str | None = None
    help: tuple[tuple[str, str], ...] = ()

    def load(self) -> Callable:
        """The separator class (or factory); a method that cannot be imported is a :class:`ConfigError`."""
        if callable(self.target):
            return self.target
        try:
            return _load(self.target)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"separation method {self.name!r} cannot be loaded from {self.target}: {exc}") from exc

    def unrecorded(self) -> dict[str, Any]:
        """The options a provenance written before they were recorded lacks, with the values such a run had
        (:attr:`unmix.separation.base.BaseSeparator.unrecorded`; nothing for other factories)."""
        return dict(getattr(self.load(), "unrecorded", None) or {})

    @property
    def title(self) -> str:
        """The label shown in the GUI."""
        return self.label or self.name

    def summary(self) -> str:
        """The one-line description (the separator's first docstring line when none was given)."""
        if self.description:
            return self.description
        doc = inspect.getdoc(self.load()) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @cached_property
    def _options(self) -> tuple[list[OptionSpec], bool]:
        factory = self.load()
        opts, open_ended = _signature_options(factory)
        if self.config_fields:
            opts = [o for o in opts if o.name not in _load(self.config_fields)] + _field_options(
                _load(self.config_fields))
        helps = dict(self.help)
        opts = [OptionSpec(o.name, o.type, o.default, helps.get(o.name, o.help)) for o in opts]
        return opts, open_ended

    def options(self) -> list[OptionSpec]:
        """Every option with its type, default and help."""
        return list(self._options[0])

    def option_names(self) -> list[str]:
        """The valid option keys (configuration dataclass parameters themselves included)."""
        names = [o.name for o in self.options()]
        if self.config_fields:
            names += list(_load(self.config_fields))
        return sorted(set(names))

    def check_options(self, options: dict[str, Any], what: str | None = None) -> None:
        """A :class:`ConfigError` (one line listing the valid keys) for an option the method does not take."""
        if self._options[1]:
            return
        unknown = sorted(set(options) - set(self.option_names()) - {o.name for o in COMMON_OPTIONS})
        if unknown:
            raise ConfigError(f"{what or 'method ' + repr(self.name)}: unknown option(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(self.option_names())}; every method also takes "
                              f"{', '.join(o.name for o in COMMON_OPTIONS)}")


BUILTIN: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("template", "unmix.baselines.template:TemplateDeglitcher",
               "classical template-fit deglitcher (the instrument's response to a step)", uses=("inventory",),
               help=(("detections", "glitch list to remove instead of detecting glitches"),
                     ("min_variance_reduction", "a glitch fit must reduce the variance by this fraction"))),
    MethodSpec("highpass", "unmix.baselines.highpass:HighpassSeparator", "plain high-pass filter baseline",
               label="high-pass", help=(("freq", "corner frequency (Hz)"), ("corners", "Butterworth corners"))),
    MethodSpec("scatcov", "unmix.separation.scatcov:ScatCovSeparator",
               "optimisation in scattering-covariance space, prior from background cluster(s)",
               uses=("prior", "device"), requires_prior=True,
               help=(("n_prior", "prior snippets (None: the protocol's, fast 20, paper 300 per cluster)"),
                     ("piece", "samples per problem"),
                     ("max_iter", "L-BFGS iterations at most (None: the protocol's, fast 100, paper 1000)"),
                     ("tol", "early stop at sqrt(loss) <= tol"))),
    MethodSpec("hybrid", "unmix.separation.hybrid.separator:HybridSeparator",
               "glitch/spike templates plus a scattering-covariance residual of what they leave (residual=auto: also "
               "where the record is unlike the prior for another reason)",
               uses=("prior", "inventory", "device"), config_fields="unmix.separation.hybrid.config:CONFIGS"),
)}
"""The built-in methods, in the order the CLI, GUI and benchmarks show them."""

METHODS: dict[str, Callable] = {}
"""Methods registered at run time with :func:`register_method` (e.g. in a notebook); they take precedence."""


def _plugins() -> dict[str, MethodSpec]:
    """Methods of the entry-point group :data:`GROUP` (loaded lazily; a plugin never replaces a built-in)."""
    out = {}
    for ep in entry_points(group=GROUP):
        if ep.name not in BUILTIN:
            out[ep.name] = MethodSpec(ep.name, ep.value)
    return out


def methods() -> dict[str, MethodSpec]:
    """Every known method: the built-ins, then plugins, then run-time registrations."""
    out = {**BUILTIN, **_plugins()}
    for name, factory in METHODS.items():
        out[name] = MethodSpec(name, factory, description=getattr(factory, "description", ""),
                               uses=tuple(getattr(factory, "uses", ())))
    return out


def method_names() -> list[str]:
    """The names of :func:`methods`, in order."""
    return list(methods())


def method_spec(name: str) -> MethodSpec:
    """The entry of ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    known = methods()
    if name not in known:
        raise ConfigError(f"unknown separation method {name!r} (known: {', '.join(known)})")
    spec = known[name]
    if name not in BUILTIN and not callable(spec.target):
        obj = spec.load()  # a plugin's entry point may name a MethodSpec instead of a class
        if isinstance(obj, MethodSpec):
            return obj
    return spec


def register_method(name: str) -> Callable:
    """Decorator for a separator class (or factory) defined at run time: available as ``get_method(name)``."""

    def deco(factory: Callable) -> Callable:
        METHODS[name] = factory
        if inspect.isclass(factory):
            factory.name = name
        return factory

    return deco


def get_method(name: str, **options: Any) -> Any:
    """The configured separator ``name`` from flat option keys; an unknown key or an invalid configuration is a
    :class:`ConfigError`."""
    spec = method_spec(name)
    spec.check_options(options)
    protect = options.pop("protect", None)
    factory = spec.load()
    separator = getattr(factory, "from_options", factory)(**options)
    if not hasattr(separator, "name"):
        separator.name = name
    check = getattr(separator, "check_params", None)  # BaseSeparator: constructors only store, so check here
    if callable(check):
        check()
    if protect:
        from unmix.separation.protect import ProtectedSeparator

        separator = ProtectedSeparator(separator, protect)
    return separator


def parse_options(pairs: Iterable[str], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs → options; values are JSON when they parse as JSON (numbers, true/false, lists), else
    strings; ``-`` in keys reads as ``_``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def describe(name: str) -> str:
    """The listing of one method: name, description, what it uses, and its options (``--list-methods``)."""
    spec = method_spec(name)
    uses = ", ".join(spec.uses) or "nothing else"
    head = f"{name}: {spec.summary()} (uses {uses}{'; needs a prior' if spec.requires_prior else ''})"
    common = [f"    {o.line()} (every method)" for o in COMMON_OPTIONS]
    return "\n".join([head, *(f"    {o.line()}" for o in spec.options()), *common])
