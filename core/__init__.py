"""Unmix core: all computation (I/O, scattering, model, separation), free of any GUI dependency."""

__version__ = "0.1.0"
