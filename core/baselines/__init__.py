"""Classical separation baselines: template-fit deglitching and plain high-pass (issue #5)."""

from unmix.baselines.highpass import HighpassSeparator
from unmix.baselines.template import TemplateDeglitcher

__all__ = ["HighpassSeparator", "TemplateDeglitcher"]
