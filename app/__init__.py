"""Unmix desktop front end (PySide6 + pyqtgraph); adapts ``core`` and computes nothing itself."""
