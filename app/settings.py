"""Preferences stored in QSettings (organisation "Unmix"), read with type coercion."""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANISATION = "Unmix"
APPLICATION = "unmix-gui"
MAX_RECENT = 10
DEVICES = ("auto", "cpu", "cuda")


def qsettings() -> QSettings:
    return QSettings(ORGANISATION, APPLICATION)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class Preferences:
    """Typed access to the stored preferences."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self.settings = settings or qsettings()

    @property
    def device(self) -> str:
        value = str(self.settings.value("compute/device", "auto"))
        return value if value in DEVICES else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.settings.setValue("compute/device", value if value in DEVICES else "auto")

    def effective_device(self) -> str:
        """'cuda' or 'cpu': the choice, with 'auto' (and an unavailable 'cuda') resolved."""
        wanted = self.device
        if wanted == "cpu":
            return "cpu"
        return "cuda" if cuda_available() else "cpu"

    @property
    def recent_files(self) -> list[str]:
        value = self.settings.value("files/recent", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in value or []]

    def add_recent(self, path: str) -> None:
        items = [path] + [p for p in self.recent_files if p != path]
        self.settings.setValue("files/recent", items[:MAX_RECENT])

    def clear_recent(self) -> None:
        self.settings.setValue("files/recent", [])

    @property
    def last_dir(self) -> str:
        return str(self.settings.value("files/last_dir", ""))

    @last_dir.setter
    def last_dir(self, value: str) -> None:
        self.settings.setValue("files/last_dir", value)

    @property
    def axis_mode(self) -> str:
        value = str(self.settings.value("view/axis_mode", "utc"))
        return value if value in ("utc", "lmst", "relative") else "utc"

    @axis_mode.setter
    def axis_mode(self, value: str) -> None:
        self.settings.setValue("view/axis_mode", value)
