"""schemathesis hooks for scripts/scan.py (loaded through SCHEMATHESIS_HOOKS): the department
upload's file part is CSV or JSON Lines, media types schemathesis has no serializer for;
the generated value is sent as the file's bytes."""

from __future__ import annotations

from typing import Any

import schemathesis

UPLOAD_TYPES = (
    "application/csv",
    "application/jsonl",
    "application/jsonlines",
    "application/ndjson",
    "application/x-jsonlines",
    "application/x-ndjson",
    "text/comma-separated-values",
    "text/csv",
)


@schemathesis.serializer(*UPLOAD_TYPES)
def as_file_bytes(ctx: Any, value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
