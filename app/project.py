"""Project file: the inputs, parameters and result paths of one analysis, as JSON (written atomically)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_path
from core.errors import InputFileError

FORMAT = "unmix-project"
VERSION = 1
SUFFIX = ".unmix.json"


@dataclass
class Project:
    """What is needed to reopen an analysis: inputs, synthetic records, parameters and paths of results."""

    inputs: list[str] = field(default_factory=list)
    synthetic: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return {"format": FORMAT, "version": VERSION, **data}

    def save(self, path: str | Path) -> Path:
        """Write the project atomically; input and result paths are kept as given (absolute is safest)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> Project:
        """Read a project file; anything malformed is an :class:`~core.errors.InputFileError` naming the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputFileError("no such project file", path) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputFileError(f"not a readable project file ({exc})", path) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputFileError("not an Unmix project file", path)
        if int(data.get("version", 0)) > VERSION:
            raise InputFileError(f"written by a newer Unmix (project version {data['version']})", path)
        try:
            project = cls(
                inputs=[str(p) for p in data.get("inputs", [])],
                synthetic=[dict(s) for s in data.get("synthetic", [])],
                parameters=dict(data.get("parameters", {})),
                results={str(k): str(v) for k, v in dict(data.get("results", {})).items()},
            )
        except (TypeError, ValueError) as exc:
            raise InputFileError(f"malformed project file ({exc})", path) from None
        project.path = path
        return project
