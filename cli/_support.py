"""What the ``ccx`` commands share: one-line errors with a stable code and the field
to fix (exit status 2), reading files, aligned columns, times for people."""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:
    from mappings import MappingError

# protocol, keys and mappings (numpy) are imported where an error is told apart, not
# here: every command imports this module, and `ccx --help` starts in 0.3 s (issue 20).

__all__ = [
    "EXIT_BAD_INPUT",
    "InputError",
    "NowOption",
    "as_input_error",
    "columns",
    "fail",
    "format_time",
    "mapping_message",
    "now_from",
    "parse_time",
    "read_bytes",
    "reports_errors",
]

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """A bad file, option or value: ``code`` is stable, ``field`` names what to fix."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field
        self.message = message


def mapping_message(exc: MappingError) -> str:
    return str(exc).removeprefix(f"{exc.field}: ")


def as_input_error(exc: Exception, field: str) -> InputError:
    """The one place that turns library errors into the line the user sees."""
    # A library's error is looked for only once the library is loaded: one never imported
    # cannot have raised it, and importing it to find out would cost `mappings` its numpy.
    if isinstance(exc, InputError):
        return exc
    if "mappings" in sys.modules:
        from mappings import MappingError

        if isinstance(exc, MappingError):
            return InputError(exc.code, exc.field, mapping_message(exc))
    if "protocol" in sys.modules:
        import protocol as P

        if isinstance(exc, P.ProtocolError):
            return InputError(exc.code, field, exc.message)
    if "keys" in sys.modules:
        from keys import KeyringError, WrongPassphrase

        if isinstance(exc, WrongPassphrase):
            return InputError("wrong_passphrase", field, str(exc))
        if isinstance(exc, KeyringError):
            return InputError("keyring_error", field, str(exc))
    raise exc


P_ = ParamSpec("P_")
R = TypeVar("R")


def reports_errors(command: Callable[P_, R]) -> Callable[P_, R]:
    """Run a command; print any user-fixable error as one line and exit 2."""

    @functools.wraps(command)
    def run(*args: P_.args, **kwargs: P_.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except Exception as exc:
            if not isinstance(exc, _user_errors()):
                raise
            fail(as_input_error(exc, "input"))

    return run


def _user_errors() -> tuple[type[Exception], ...]:
    """Ours, and those of the pure libraries loaded (as in ``as_input_error``)."""
    kinds: list[type[Exception]] = [InputError]
    if "mappings" in sys.modules:
        from mappings import MappingError

        kinds.append(MappingError)
    if "protocol" in sys.modules:
        import protocol as P

        kinds.append(P.ProtocolError)
    if "keys" in sys.modules:
        from keys import KeyringError

        kinds.append(KeyringError)
    return tuple(kinds)


def fail(error: InputError) -> NoReturn:
    typer.echo(f"error [{error.code}] {error.field}: {error.message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def read_bytes(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("file_not_found", field, f"no such file: {path}") from exc
    except IsADirectoryError as exc:
        raise InputError("file_error", field, f"{path} is a folder, not a file") from exc
    except OSError as exc:
        raise InputError("file_error", field, f"cannot read {path}: {exc.strerror}") from exc


def parse_time(text: str, field: str) -> int:
    """A NumericDate from the command line: epoch seconds, a date YYYY-MM-DD (midnight
    UTC) or an ISO 8601 date-time (UTC when no offset is given)."""
    if re.fullmatch(r"\d+", text):
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(
            "invalid_time",
            field,
            f"{text!r} is not epoch seconds, YYYY-MM-DD or an ISO 8601 date-time",
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return calendar.timegm(moment.utctimetuple())


# Every command that decides something by the time takes it from here: the clock, unless
# --now names the moment (as every service takes `now`), so that a test passes on any day
# and an operator can rehearse a date ahead.
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        metavar="TIME",
        help="Act as at this moment: epoch seconds, YYYY-MM-DD or ISO 8601. Default: the clock.",
        show_default=False,
    ),
]


def now_from(option: str | None) -> int:
    """The moment a command acts at: ``--now`` when given, else the clock."""
    return int(time.time()) if option is None else parse_time(option, "--now")


def format_time(numeric_date: int) -> str:
    moment = dt.datetime.fromtimestamp(numeric_date, dt.UTC)
    if moment.time() == dt.time(0):
        return moment.date().isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def _width(text: str) -> int:
    """Terminal columns of ``text``: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def columns(rows: Sequence[Sequence[str]], left: Sequence[int] = ()) -> list[str]:
    """Rows aligned in columns (the first row is the header): numbers to the right,
    the columns listed in ``left`` to the left."""
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            padding = " " * (width - _width(cell))
            cells.append(cell + padding if i in left else padding + cell)
        lines.append("  " + "  ".join(cells).rstrip())
    return lines
