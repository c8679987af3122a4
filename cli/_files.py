"""Files the node writes: atomically, and as JSON a person can read and diff."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["pretty_json", "write_atomically"]

_WIDTH = 88  # wrap long lists of numbers at about this many characters


def write_atomically(path: Path, data: bytes, *, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    ``mode`` (less the umask) is the file's from its creation: ``0o600`` for secrets,
    so that no moment exists in which others could read them.

    The bytes go to a new temporary file in the same folder (``os.replace`` is atomic only
    within one file system), are flushed to disk, then renamed over ``path``. On any
    error the temporary file is removed and ``path`` is left as it was. Raises OSError.
    """
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never follow or reuse someone else's file; ``mode`` less the umask.
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def pretty_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and two-space indents, ending in a newline.

    It parses to the same value as the canonical form (so the same content hash), but
    a list of numbers stays on a few wrapped lines and each row of a list of rows (a
    table's knots) on one line, so that a table is read and diffed row by row.
    """
    return (_render(value, 0) + "\n").encode("utf-8")


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list | tuple)


def _render(value: Any, indent: int) -> str:
    inner = " " * (indent + 2)
    closing = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        members = [
            f"{inner}{_scalar(str(key))}: {_render(value[key], indent + 2)}"
            for key in sorted(value)
        ]
        return "{\n" + ",\n".join(members) + "\n" + closing + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        if all(_is_scalar(item) for item in value):
            items = [_scalar(item) for item in value]
            one_line = "[" + ", ".join(items) + "]"
            if indent + len(one_line) <= _WIDTH:
                return one_line
            lines: list[str] = []
            line = ""
            for item in items:
                if line and len(inner) + len(line) + len(item) + 2 > _WIDTH:
                    lines.append(line + ",")
                    line = ""
                line = f"{line}, {item}" if line else item
            lines.append(line)
            return "[\n" + "\n".join(inner + text for text in lines) + "\n" + closing + "]"
        rows = [inner + _render(item, indent + 2) for item in value]
        return "[\n" + ",\n".join(rows) + "\n" + closing + "]"
    return _scalar(value)
