"""Classical separation baselines: template-fit deglitching and plain high-pass (issue #5)."""

from core.baselines.highpass import HighpassSeparator
from core.baselines.template import TemplateDeglitcher

__all__ = ["HighpassSeparator", "TemplateDeglitcher"]
