"""Source separation in scattering-covariance space (issue #5)."""

from core.separation.result import METHODS, SeparationResult, Separator, get_method, register_method

__all__ = ["METHODS", "SeparationResult", "Separator", "get_method", "register_method"]
