"""Latency profiles are data: per target a folder under ``latency_models/`` holding

- ``meta.json``: the device, runtime, library versions and date of the last build;
- ``SPACE.predictor.json``: the profile of one space (unit measurements or counts, the
  whole-subnet measurements, the fitted model, the validation summary);
- ``SPACE.blocks.csv``: the unit measurements, one row per unit, for people and spreadsheets;
- ``SPACE.validation.csv`` and ``.png``: held-out subnets, measured vs predicted.

Profiles are found in ``$NAS_PROFILES``, then ``./latency_models``, then the copy shipped
with the package; builds write to ``--out`` or ``./latency_models`` (or ``$NAS_PROFILES``).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.atomic import atomic_write
from nas.errors import NasError
from nas.space import SearchSpace, space_hash  # noqa: F401 (re-exported: profiles are keyed by it)

FORMAT = "nas-latency-profile"
VERSION = 1
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Profile:
    target: str
    space: str
    kind: str  # measured, mcu, table, transfer
    space_hash: str
    input_shape: list[int]
    meta: dict[str, Any] = field(default_factory=dict)
    units: dict[str, dict[str, Any]] = field(default_factory=dict)
    archs: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    validation_rows: list[dict[str, Any]] = field(default_factory=list)  # held-out arch, measured_ms, predicted_ms
    name: str = ""  # the file name: the space's, with "@CxHxW" for another input shape

    def __post_init__(self) -> None:
        self.name = self.name or self.space

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> Profile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NasError(f"{source} is not a latency profile")
        if data.get("version") != VERSION:
            raise NasError(f"{source} has profile version {data.get('version')}, expected {VERSION}")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise NasError(f"{source} is an incomplete latency profile: {exc}") from None


def assemble(target: str, space: SearchSpace, kind: str, meta: dict[str, Any],
             input_shape: tuple[int, ...] | list[int] | None = None, **parts: Any) -> Profile:
    """A new profile of ``space`` on ``target``: the one place where what every profile derives
    from its space (name, file name, hash, input shape: the task's unless ``input_shape``) and the
    date it was made are filled in. ``parts``: the units, archs, model and validation fields."""
    default = tuple(getattr(getattr(space, "task", None), "input_shape", ()) or ())
    shape = tuple(input_shape) if input_shape is not None else default
    return Profile(target=target, space=space.name, name=profile_name(space, shape), kind=kind,
                   space_hash=space_hash(space), input_shape=list(shape),
                   meta={**meta, "date": _dt.date.today().isoformat()}, **parts)


def profiles_dirs() -> list[Path]:
    """Where profiles are looked up, first match wins."""
    dirs = []
    if os.environ.get("NAS_PROFILES"):
        dirs.append(Path(os.environ["NAS_PROFILES"]))
    dirs.append(Path.cwd() / "latency_models")
    for shipped in (_PACKAGE_DIR / "_data" / "latency_models", _PACKAGE_DIR.parent / "latency_models"):
        if shipped.is_dir():
            dirs.append(shipped)
    seen, out = set(), []
    for d in dirs:
        key = d.resolve() if d.exists() else d
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def default_out_dir() -> Path:
    return Path(os.environ["NAS_PROFILES"]) if os.environ.get("NAS_PROFILES") else Path.cwd() / "latency_models"


def _safe_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_.@" for c in name) or name.startswith("."):
        raise NasError(f"{name!r} is not a usable target or space name (letters, digits, '-', '_', '.')")
    return name


def profile_name(space: SearchSpace, input_shape: tuple[int, ...] | list[int] | None = None) -> str:
    """``SPACE`` for the space's own input shape, ``SPACE@1x8x8`` for another one."""
    default = tuple(getattr(getattr(space, "task", None), "input_shape", ()) or ())
    if input_shape is None or tuple(input_shape) == default:
        return space.name
    return f"{space.name}@{'x'.join(str(int(d)) for d in input_shape)}"


def profile_path(root: Path, target: str, name: str) -> Path:
    return root / _safe_name(target) / f"{_safe_name(name)}.predictor.json"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)


def save_profile(profile: Profile, root: Path | None = None) -> Path:
    """Write the profile, its blocks CSV and the target's meta.json under ``root``; returns the profile path."""
    root = Path(root) if root else default_out_dir()
    path = profile_path(root, profile.target, profile.name)
    try:
        _atomic_write(path, json.dumps(profile.to_json(), indent=1, sort_keys=True))
        _atomic_write(path.parent / "meta.json", json.dumps({"target": profile.target, "kind": profile.kind, **profile.meta},
                                                            indent=1, sort_keys=True))
        if profile.units:
            columns = sorted({k for row in profile.units.values() for k in row})
            lines = [["unit", *columns]] + [[key, *(row.get(c, "") for c in columns)] for key, row in sorted(profile.units.items())]
            blocks = path.with_name(f"{profile.name}.blocks.csv")
            with open(blocks, "w", newline="") as f:
                csv.writer(f).writerows(lines)
    except OSError as exc:
        raise NasError(f"cannot write the latency profile under {root}: {exc.strerror or exc}") from None
    return path


def read_meta(folder: Path) -> dict[str, Any]:
    """A target folder's ``meta.json`` ({} when missing or unreadable)."""
    try:
        data = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_profile(target: str, space: SearchSpace, roots: list[Path] | None = None,
                 input_shape: tuple[int, ...] | None = None, hint: str | None = None) -> tuple[Profile, Path]:
    """The profile of ``target`` for ``space`` (at ``input_shape``, the task's by default);
    NasError naming the build command when there is none (``hint``: how the user named the
    space, a YAML path for one of their own)."""
    from nas.space import space_ref

    name = profile_name(space, input_shape)
    ref = space_ref(space, hint)
    shape_option = "" if name == space.name else f" --input-shape {','.join(str(d) for d in input_shape or ())}"
    for root in roots or profiles_dirs():
        path = profile_path(root, target, name)
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise NasError(f"latency profile {path} is unreadable: {exc}") from None
            profile = Profile.from_json(data, str(path))
            if profile.space_hash != space_hash(space):
                raise NasError(
                    f"latency profile {path} was built for another version of space {space.name!r}: "
                    f"rebuild it with 'nas latency build {ref} --target {target}{shape_option}'"
                )
            return profile, path
    what = f"space {space.name!r}" + (f" at input {name.split('@')[1]}" if "@" in name else "")
    raise NasError(
        f"no {target} latency profile for {what}: build one with "
        f"'nas latency build {ref} --target {target}{shape_option}'"
    )


def list_profiles(roots: list[Path] | None = None) -> list[tuple[str, str, Path]]:
    """(target, space, path) of every profile that can be found (in ``roots``, by default
    :func:`profiles_dirs`), first location first."""
    found: dict[tuple[str, str], Path] = {}
    for root in roots or profiles_dirs():
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*/*.predictor.json")):
            key = (path.parent.name, path.name.removesuffix(".predictor.json"))
            found.setdefault(key, path)
    return [(t, s, p) for (t, s), p in sorted(found.items())]
