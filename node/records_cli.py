"""`ccx records push`: a department pushes its records from a CSV (header row first) or
JSONL file to its city's node, over HTTP with its client credentials (issue 20).

It speaks only HTTP (POST /v1/records/upload, docs/ISSUING.md's departments), so it
needs no node of its own; it lives beside the node's commands because the records'
rules and the file format are the node's (node/services/records.py reads the file: the
command splits it into batches and reads no column itself). Its batches are the file's
rows in order, each a CSV with the header row or a JSONL file, small enough for the
node's limits (CCX_MAX_BATCH_ROWS, CCX_MAX_BODY_BYTES)."""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import InputError, call_node, node_client, read_bytes, reports_errors, write_atomically

__all__ = ["DEFAULT_BATCH_BYTES", "DEFAULT_BATCH_ROWS", "EXIT_REFUSED_ROWS", "records_app"]

# Under the node's defaults (10,000 rows, 2 MiB a request) with room for the multipart
# envelope; a node configured lower says so (413 or too_many_rows): pass --batch-size.
DEFAULT_BATCH_ROWS = 1000
DEFAULT_BATCH_BYTES = 1024 * 1024
BUSY_RETRIES = 5  # a batch answered 429/503 is sent again, after Retry-After, this often
EXIT_REFUSED_ROWS = 1  # the push ran, and the node refused some rows (2: it could not run)

records_app = typer.Typer(
    help="A department's records: push them to its city's node from a CSV or JSONL file.",
    no_args_is_help=True,
    add_completion=False,
)


class FileFormat(enum.StrEnum):
    csv = "csv"
    jsonl = "jsonl"


@dataclass(frozen=True)
class Batch:
    first: int  # the index of its first row in the whole file (data rows, from 0)
    rows: int
    data: bytes


@dataclass
class Tally:
    stored: int = 0
    duplicate: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)


def _format_of(path: Path, given: FileFormat | None) -> FileFormat:
    if given is not None:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return FileFormat.csv
    if suffix in (".jsonl", ".ndjson"):
        return FileFormat.jsonl
    raise InputError(
        "unsupported_file_type",
        "--format",
        f"{path.name}: name it .csv or .jsonl, or give --format",
    )


def _csv_batches(text: str, size: int, max_bytes: int) -> tuple[int, Iterator[Batch]]:
    """The CSV's data rows (blank lines skipped, as the node skips them) in batches, each
    with the header row."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise InputError("invalid_csv", "FILE", f"the CSV can't be read: {exc}") from exc
    if not rows:
        raise InputError("invalid_csv", "FILE", "the file is empty; it needs a header row")
    header, data = rows[0], [row for row in rows[1:] if any(cell.strip() for cell in row)]

    def encode(chunk: list[list[str]]) -> bytes:
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator="\n").writerows([header, *chunk])
        return out.getvalue().encode("utf-8")

    return len(data), _chunks(data, size, max_bytes, encode)


def _jsonl_batches(text: str, size: int, max_bytes: int) -> tuple[int, Iterator[Batch]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines), _chunks(lines, size, max_bytes, lambda chunk: "\n".join(chunk).encode())


def _chunks(
    rows: list[Any], size: int, max_bytes: int, encode: Callable[[list[Any]], bytes]
) -> Iterator[Batch]:
    start = 0
    while start < len(rows):
        count = min(size, len(rows) - start)
        data = encode(rows[start : start + count])
        while len(data) > max_bytes and count > 1:  # long rows: fewer of them
            count = max(1, count // 2)
            data = encode(rows[start : start + count])
        yield Batch(start, count, data)
        start += count


def _progress(total: int) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        "pushing", BarColumn(), MofNCompleteColumn(), "rows", TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal or total == 0,
    )  # fmt: skip


@records_app.command("push")
@reports_errors
def push(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="A .csv file (header row first: record_id, resident_id, kind, occurred_at, "
            "...) or a .jsonl file (one record per line).",
            show_default=False,
        ),
    ],
    node: Annotated[
        str,
        typer.Option(
            "--node",
            metavar="URL",
            envvar="CCX_NODE_URL",
            help="The city node's base URL (or $CCX_NODE_URL).",
            show_envvar=False,
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            envvar="CCX_CLIENT_TOKEN",
            help="The department's client token, scope records:push (or $CCX_CLIENT_TOKEN).",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    file_format: Annotated[
        FileFormat | None,
        typer.Option(
            "--format", help="csv or jsonl (default: by FILE's suffix).", show_default=False
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            metavar="ROWS",
            min=1,
            help="Most rows in one request (the node takes at most CCX_MAX_BATCH_ROWS).",
        ),
    ] = DEFAULT_BATCH_ROWS,
    refused_path: Annotated[
        Path | None,
        typer.Option(
            "--refused",
            metavar="FILE",
            help="Write the refused rows' results here as JSONL instead of to stderr.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Push a department's records from a file, in batches, with a progress bar.

    Each row is checked on its own: stored, duplicate (already held: pushing a file
    again is safe, so rerun it after an interruption) or refused (index from 0 among the
    data rows, record id, code, message). Prints the counts; exits 0 when no row was
    refused, 1 when some were (the others are stored), 2 when the push could not run.
    A batch the node answers 429 (rate limited) or 503 (busy) is sent again after the
    wait the node asks for (Retry-After), up to five times.
    """
    if not token:
        raise InputError(
            "missing_option", "--token", "give the client token (--token or $CCX_CLIENT_TOKEN)"
        )
    kind = _format_of(file, file_format)
    try:
        text = read_bytes(file, "FILE").decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("invalid_encoding", "FILE", f"{file} is not UTF-8 text") from exc
    split = _csv_batches if kind is FileFormat.csv else _jsonl_batches
    total, batches = split(text, batch_size, DEFAULT_BATCH_BYTES)
    tally = Tally()
    with node_client(node) as http, _progress(total) as progress:
        task = progress.add_task("push", total=total)
        for batch in batches:
            files = {"file": (f"records.{kind.value}", batch.data, _MEDIA[kind])}
            answer = _upload(http, token, files)
            _count(tally, answer, batch.first)
            progress.advance(task, batch.rows)
    typer.echo(
        f"{total} rows: {tally.stored} stored, {tally.duplicate} duplicate, "
        f"{len(tally.refused)} refused"
    )
    if tally.refused:
        _report_refused(tally.refused, refused_path)
        raise typer.Exit(EXIT_REFUSED_ROWS)


_MEDIA = {FileFormat.csv: "text/csv", FileFormat.jsonl: "application/jsonl"}
# the node's refusals of the file itself (its header row, its encoding): FILE is to fix
_FILE_CODES = {"invalid_csv", "invalid_encoding", "unsupported_file_type"}


def _upload(http: Any, token: str, files: dict[str, Any]) -> Any:
    def busy(reason: str, seconds: float) -> None:
        typer.echo(f"the node is busy ({reason}): sending the batch again in {seconds:g} s",
                   err=True)  # fmt: skip

    try:  # a batch is safe to send again: a row the node holds already is a duplicate
        return call_node(
            http, "POST", "v1/records/upload", token=token, files=files,
            retry_busy=BUSY_RETRIES, on_busy=busy,
        )  # fmt: skip
    except InputError as exc:
        if exc.code in _FILE_CODES:
            raise InputError(exc.code, "FILE", exc.message) from exc
        raise


def _count(tally: Tally, answer: Any, first: int) -> None:
    try:
        tally.stored += int(answer["stored"])
        tally.duplicate += int(answer["duplicate"])
        for result in answer["results"]:
            if result["status"] == "refused":
                tally.refused.append({**result, "index": first + int(result["index"])})
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError("invalid_response", "--node", f"the node's answer lacks {exc}") from exc


def _report_refused(refused: list[dict[str, Any]], path: Path | None) -> None:
    if path is not None:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in refused)
        try:
            write_atomically(path, text.encode("utf-8"))
        except OSError as exc:
            raise InputError(
                "file_error", "--refused", f"cannot write {path}: {exc.strerror}"
            ) from exc
        typer.echo(f"the refused rows are in {path}", err=True)
        return
    for row in refused:
        record = f" ({row['record_id']})" if row.get("record_id") else ""
        typer.echo(
            f"refused row {row['index']}{record}: [{row.get('code')}] {row.get('message')}",
            err=True,
        )
