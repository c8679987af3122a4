"""Errors of mappings/: bad input named by the field at fault, with a stable code."""

from __future__ import annotations

from typing import ClassVar

__all__ = ["MappingError"]


class MappingError(ValueError):
    """Bad input to a scale, a histogram, a linking or a mapping table.

    ``field`` names what is wrong (``x_counts[3]``, ``knots``, ``alliance``...) so a
    person can fix it; ``code`` is stable for programs. Nothing is built or written
    when one is raised.
    """

    code: ClassVar[str] = "invalid_mapping_input"
    http_status: ClassVar[int] = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
