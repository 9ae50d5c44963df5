"""The instructor's private results key (moved from ``grader.classroom.resume`` so the
hold-out and the re-run choice, below the classroom stage, can read it)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from grader.base.errors import GraderError


def result_key_file() -> Path:
    """Where the results' HMAC key lives (see the module docstring)."""
    explicit = os.environ.get("DLCOURSE_KEY_FILE")
    if explicit:
        return Path(explicit)
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "dlcourse" / "results.key"


def load_result_key(path: Path | None = None) -> bytes:
    """The HMAC key, created (32 random bytes, mode 0600) when it does not exist yet."""
    path = result_key_file() if path is None else Path(path)
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(key + "\n")
        except FileExistsError:  # another batch made it meanwhile: use theirs
            key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise GraderError(f"cannot read the results key {str(path)!r}: {exc}. Fix: remove it"
                          " (a new one is made; earlier results are then graded again) or point"
                          " DLCOURSE_KEY_FILE at a readable file") from exc
    if len(key) < 32:
        raise GraderError(f"the results key {str(path)!r} is too short (expected 64 hex"
                          " characters). Fix: remove it; a new one is made")
    return key.encode("ascii")
