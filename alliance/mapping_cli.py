"""`ccx mapping`: build, show, apply and plot mapping tables (DESIGN section 8, PROTOCOL 7a).

The I/O shell around ``mappings/``: this module reads files, the clock, the environment
and the terminal, and leaves the linking to ``mappings``. Every failure the user can
fix (a bad summary, a token that does not verify, a missing file, a wrong passphrase)
prints one line ``error [code] field: message`` to stderr and exits with status 2;
nothing is written then.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import (
    EXIT_BAD_INPUT,
    InputError,
    NowOption,
    as_input_error,
    columns,
    format_time,
    mapping_message,
    now_from,
    pretty_json,
    read_bytes,
    reports_errors,
    write_atomically,
)

if TYPE_CHECKING:  # the rest is imported by the command that uses it: `ccx` starts at once
    import numpy as np

    import protocol as P
    from mappings import AllianceScale, DistributionSummary, MappingTable, Smoothing

__all__ = ["EXIT_BAD_INPUT", "PASSPHRASE_ENV", "InputError", "mapping_app"]

PASSPHRASE_ENV = "CCX_KEYRING_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
BOOTSTRAP_SEED = 0
BOOTSTRAP_REPLICATIONS = 200
CSV_CHUNK = 65_536  # scores applied per vectorised call when streaming a CSV file

mapping_app = typer.Typer(
    name="mapping",
    help=(
        "Mapping tables: link a city's local score to the alliance scale (0..1000). "
        "Build a table from a city's distribution summary, inspect it, apply it to "
        "scores, compare cities on a plot, and regenerate the demo alliance's tables."
    ),
    no_args_is_help=True,
    add_completion=False,
)


# --- errors: one line, exit 2 --------------------------------------------------------------


@contextmanager
def _reading(path: Path, field: str) -> Iterator[None]:
    """Name the file in errors raised while its content is checked."""
    import protocol as P
    from mappings import MappingError

    try:
        yield
    except (MappingError, P.ProtocolError) as exc:
        error = as_input_error(exc, field)
        raise InputError(error.code, error.field, f"{error.message} (in {path})") from exc


# --- reading files ---------------------------------------------------------------------------


def _read_json(path: Path, field: str) -> Any:
    return _parse_json(read_bytes(path, field), path, field)


def _parse_json(data: bytes, path: Path, field: str) -> Any:
    import protocol as P

    try:
        return P.strict_json_loads(data, what=str(path))
    except P.ProtocolError as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        where = "" if str(path) in exc.message else f" (in {path})"
        raise InputError("invalid_json", field, f"{exc.message}{cause}{where}") from exc


def _write(path: Path, data: bytes, field: str = "--out") -> None:
    try:
        write_atomically(path, data)
    except OSError as exc:
        raise InputError("file_error", field, f"cannot write {path}: {exc.strerror}") from exc


def _load_summary(path: Path) -> DistributionSummary:
    from mappings import DistributionSummary

    data = _read_json(path, "SUMMARY")
    with _reading(path, "SUMMARY"):
        return DistributionSummary.from_json(data)


def _load_scale(path: Path | None) -> AllianceScale:
    from mappings import AllianceScale

    if path is None:
        return AllianceScale()
    data = _read_json(path, "--scale")
    if isinstance(data, dict) and "scale" in data and "reference" not in data:
        data = data["scale"]  # a whole registry payload: take its scale claim
    with _reading(path, "--scale"):
        return AllianceScale.from_json(data)


def _load_signing_key(path: Path) -> Any:
    from keys import Keyring, KeyringError

    data = read_bytes(path, "--keyring")
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase is None:
        passphrase = typer.prompt(f"Passphrase for {path}", hide_input=True)
    try:
        ring = Keyring.load(data, passphrase.encode("utf-8"))
    except KeyringError as exc:
        raise as_input_error(exc, "--keyring") from exc
    except (KeyError, TypeError, ValueError) as exc:
        # Keyring.load lets a malformed key entry through as a bare KeyError/ValueError.
        raise InputError("keyring_error", "--keyring", f"malformed keyring entry: {exc}") from exc
    return ring.active.private_key


def _load_public_key(path: Path) -> P.PublicKey:
    import protocol as P

    jwk = _read_json(path, "--alliance-key")
    if isinstance(jwk, dict) and isinstance(jwk.get("keys"), list):
        if len(jwk["keys"]) != 1:
            raise InputError(
                "invalid_key", "--alliance-key", "a JWKS must hold exactly one key (the alliance's)"
            )
        jwk = jwk["keys"][0]
    try:
        return P.public_key_from_jwk(jwk)
    except P.ProtocolError as exc:
        raise InputError(exc.code, "--alliance-key", f"{exc.message} (in {path})") from exc


# --- tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trust:
    """What a table is checked against: the alliance scale, and its key to verify tokens."""

    scale: AllianceScale
    scale_given: bool
    key: P.PublicKey | None
    alliance: str | None


@dataclass(frozen=True)
class LoadedTable:
    table: MappingTable
    path: Path
    signature: str  # "unsigned", "verified" or "unverified"
    issuer: str | None = None
    issued_at: int | None = None


def _trust(scale_path: Path | None, key_path: Path | None, alliance: str | None) -> Trust:
    if key_path is not None and alliance is None:
        raise InputError(
            "missing_option", "--alliance", "is required with --alliance-key: the alliance id"
        )
    if alliance is not None and key_path is None:
        raise InputError(
            "missing_option",
            "--alliance-key",
            "is required with --alliance: the key to verify with",
        )
    key = _load_public_key(key_path) if key_path is not None else None
    return Trust(_load_scale(scale_path), scale_path is not None, key, alliance)


def _token_claims(token: str) -> dict[str, Any]:
    """The payload of a mapping-table token, without checking its signature."""
    import protocol as P

    parts = token.split(".")
    if len(parts) != 3:
        raise P.MalformedToken("a mapping table token has three parts separated by '.'")
    header = P.strict_json_loads(P.b64url_decode(parts[0], what="header"), what="header")
    if not isinstance(header, dict) or header.get("typ") != P.MAPPING_TABLE_TYP:
        raise P.WrongTyp(f"the token is not a {P.MAPPING_TABLE_TYP}")
    claims = P.strict_json_loads(P.b64url_decode(parts[1], what="payload"), what="payload")
    if not isinstance(claims, dict):
        raise P.MalformedToken("the token's payload is not a JSON object")
    return claims


def _load_table(path: Path, field: str, trust: Trust) -> LoadedTable:
    """A table from a claims file (JSON) or a signed token, verified when a key is given."""
    from mappings import MappingTable

    data = read_bytes(path, field)
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InputError("invalid_json", field, f"{path} is not UTF-8 text") from exc
    with _reading(path, field):
        if text.startswith("{"):
            claims = _parse_json(data, path, field)
            if not isinstance(claims, dict):
                raise InputError("invalid_json", field, f"{path} is not a JSON object")
            return LoadedTable(MappingTable.from_claims(claims), path, "unsigned")
        if trust.key is not None:
            assert trust.alliance is not None
            table = MappingTable.from_token(
                text, key=trust.key, alliance=trust.alliance, scale=trust.scale
            )
            claims = _token_claims(text)
            return LoadedTable(table, path, "verified", claims.get("iss"), claims.get("iat"))
        claims = _token_claims(text)
        table = MappingTable.from_claims(claims)
        return LoadedTable(table, path, "unverified", claims.get("iss"), claims.get("iat"))


def _require_scale(loaded: LoadedTable, trust: Trust) -> None:
    if loaded.table.scale_sha256 != trust.scale.sha256:
        which = "the scale given with --scale" if trust.scale_given else "the default scale"
        raise InputError(
            "invalid_mapping_input",
            "scale_sha256",
            f"{loaded.path} was built for another alliance scale than {which}; "
            "pass its scale with --scale",
        )


def _warn_unverified(loaded: LoadedTable) -> None:
    if loaded.signature == "unverified":
        typer.echo(
            f"warning: {loaded.path} is UNVERIFIED (pass --alliance-key and --alliance)",
            err=True,
        )


# --- values on the command line --------------------------------------------------------------


def _parse_date(text: str, field: str) -> int:
    """A YYYY-MM-DD date as the NumericDate of its midnight, UTC."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InputError("invalid_date", field, f"{text!r} is not a date YYYY-MM-DD") from exc
    return calendar.timegm(day.timetuple())


def _parse_smoothing(text: str) -> Smoothing:
    """``none``, ``bump``, ``loglinear:K`` or ``loglinear:aic``."""
    from mappings import MappingError

    if text == "none":
        return None
    if text == "bump":
        return "bump"
    kind, _, degree = text.partition(":")
    if kind == "loglinear" and degree == "aic":
        return ("loglinear", "aic")
    if kind == "loglinear" and degree.isdigit():
        return ("loglinear", int(degree))
    raise MappingError(
        "smoothing", f"unknown smoothing {text!r}; use none, bump, loglinear:K or loglinear:aic"
    )


def _parse_standard_errors(text: str | None, smoothing: Smoothing) -> str | None:
    from mappings import MappingError

    if text is None:
        return "lord" if smoothing is None else "bootstrap"
    if text in ("lord", "bootstrap"):
        return text
    if text == "none":
        return None
    raise MappingError("se", f"unknown standard errors {text!r}; use lord, bootstrap or none")


def _describe_smoothing(smoothing: Any) -> str:
    if smoothing is None:
        return "none"
    if isinstance(smoothing, list | tuple) and len(smoothing) == 2:
        degree = "chosen by AIC" if smoothing[1] == "aic" else str(smoothing[1])
        return f"{smoothing[0]}, degree {degree}"
    return str(smoothing)


def _parse_score(text: str, table: MappingTable) -> Any:
    """A score as typed: a grade label on an ordinal scale, else a number."""
    from mappings import MappingError

    if table.local_scale.labels is not None:
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise MappingError("score", f"{text!r} is not a number") from None


# --- building ------------------------------------------------------------------------------


def make_table(
    summary: DistributionSummary,
    scale: AllianceScale,
    *,
    version: int,
    valid_from: int,
    valid_to: int,
    smoothing: Smoothing,
    standard_errors: str | None,
    seed: int,
    replications: int,
) -> MappingTable:
    """``mappings.build_table`` with the bootstrap's generator made from ``seed``, so that
    the same summary and options always give the same table (and the same hash)."""
    import numpy as np

    from mappings import build_table

    return build_table(
        summary,
        scale,
        version=version,
        valid_from=valid_from,
        valid_to=valid_to,
        smoothing=smoothing,
        standard_errors=standard_errors,
        rng=np.random.default_rng(seed) if standard_errors == "bootstrap" else None,
        replications=replications,
    )


SummaryArgument = Annotated[
    Path,
    typer.Argument(
        metavar="SUMMARY",
        help="A city's distribution summary (JSON: city, local_scale, counts, snapshot, model_version).",
        show_default=False,
    ),
]
ScaleOption = Annotated[
    Path | None,
    typer.Option(
        "--scale",
        metavar="SCALE.json",
        help="The registry's `scale` claim to link to or check against. Default: the "
        "default alliance scale (normal, mean 600, sd 100, 0..1000).",
        show_default=False,
    ),
]
AllianceKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--alliance-key",
        metavar="ALLIANCE.jwk",
        help="The alliance's public key (a JWK, or a JWKS of one key) to verify a signed table.",
        show_default=False,
    ),
]
AllianceOption = Annotated[
    str | None,
    typer.Option(
        "--alliance",
        metavar="URL",
        help="The alliance id: the `iss` a signed table must carry.",
        show_default=False,
    ),
]


@mapping_app.command()
@reports_errors
def build(
    summary_path: SummaryArgument,
    version: Annotated[
        int, typer.Option("--version", metavar="N", help="The table's version (>= 1).")
    ],
    valid_from: Annotated[
        str,
        typer.Option(
            "--valid-from", metavar="YYYY-MM-DD", help="First day the table is valid (UTC)."
        ),
    ],
    valid_to: Annotated[
        str,
        typer.Option(
            "--valid-to", metavar="YYYY-MM-DD", help="Day the table stops being valid (UTC)."
        ),
    ],
    smoothing: Annotated[
        str,
        typer.Option(
            "--smoothing",
            metavar="KIND",
            help="Presmoothing of both histograms: none; bump (a tiny mass on every point); "
            "loglinear:K (log-linear of degree K, 1..20); or loglinear:aic (the degree "
            "chosen by AIC).",
        ),
    ] = "none",
    se: Annotated[
        str | None,
        typer.Option(
            "--se",
            metavar="KIND",
            help="Standard errors of the equivalents: lord (analytic; unsmoothed only), "
            "bootstrap (resampled, any smoothing) or none. Default: lord without "
            "smoothing, bootstrap with it.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", metavar="N", help="Seed of the bootstrap: the same seed, the same table."
        ),
    ] = BOOTSTRAP_SEED,
    replications: Annotated[
        int, typer.Option("--replications", metavar="N", help="Bootstrap replications.")
    ] = BOOTSTRAP_REPLICATIONS,
    scale_path: ScaleOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Where to write the table (atomically). Default: standard output.",
            show_default=False,
        ),
    ] = None,
    sign: Annotated[
        bool,
        typer.Option(
            "--sign",
            help="Sign the table with the keyring's active key and write the compact "
            f"mapping-table+jwt instead of JSON claims. The passphrase comes from "
            f"${PASSPHRASE_ENV}, else a hidden prompt.",
        ),
    ] = False,
    keyring: Annotated[
        Path | None,
        typer.Option(
            "--keyring",
            metavar="KEYRING.json",
            help="The alliance keyring to sign with (with --sign).",
            show_default=False,
        ),
    ] = None,
    alliance: Annotated[
        str | None,
        typer.Option(
            "--alliance",
            metavar="URL",
            help="The alliance id to sign as (the token's `iss`; with --sign).",
            show_default=False,
        ),
    ] = None,
    now: NowOption = None,
) -> None:
    """Build a mapping table from a city's distribution summary.

    Links the city's histogram to the alliance scale's reference distribution by
    equipercentile and writes the table's claims as pretty JSON with sorted keys, or,
    with --sign, the signed token. Nothing is written if anything fails.

    Example: ccx mapping build xiamen.summary.json --version 1 --valid-from 2026-11-01
    --valid-to 2027-11-01 --out xiamen.table.json
    """
    if sign and (keyring is None or alliance is None):
        missing = "--keyring" if keyring is None else "--alliance"
        raise InputError("missing_option", missing, "is required with --sign")
    if not sign and (keyring is not None or alliance is not None):
        given = "--keyring" if keyring is not None else "--alliance"
        raise InputError("missing_option", "--sign", f"{given} is only used with --sign")
    chosen_smoothing = _parse_smoothing(smoothing)
    standard_errors = _parse_standard_errors(se, chosen_smoothing)
    start, end = _parse_date(valid_from, "--valid-from"), _parse_date(valid_to, "--valid-to")
    summary = _load_summary(summary_path)
    scale = _load_scale(scale_path)
    # Ask for the passphrase before the (possibly slow) bootstrap, not after it.
    key = _load_signing_key(keyring) if sign and keyring is not None else None
    table = make_table(
        summary,
        scale,
        version=version,
        valid_from=start,
        valid_to=end,
        smoothing=chosen_smoothing,
        standard_errors=standard_errors,
        seed=seed,
        replications=replications,
    )
    if key is not None:
        assert alliance is not None
        data = (table.sign(alliance=alliance, key=key, now=now_from(now)) + "\n").encode()
    else:
        data = pretty_json(table.to_claims())
    if out is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        _write(out, data)
        typer.echo(f"wrote {out} ({table.city}, content hash {table.sha256})", err=True)


# --- showing -------------------------------------------------------------------------------


def _knot_rows(table: MappingTable) -> list[int]:
    """Indices of the knots to show: every ~10% of the scale, and both ends."""
    last = len(table.knots) - 1
    return sorted({round(i * last / 10) for i in range(11)})


def _local_label(table: MappingTable, local: float) -> str:
    labels = table.local_scale.labels
    if labels is not None:
        return labels[round(local)]
    return str(int(local)) if float(local).is_integer() else f"{local:g}"


def _describe_scale(table: MappingTable) -> str:
    scale = table.local_scale
    if scale.labels is not None:
        return f"{scale.name}, grades {' < '.join(scale.labels)}"
    step = "" if scale.step == 1 else f" by {scale.step:g}"
    return f"{scale.name}, {scale.min:g}..{scale.max:g}{step}"


def _describe_signature(loaded: LoadedTable, trust: Trust) -> str:
    signed = (
        f"signed by {loaded.issuer} at {format_time(loaded.issued_at)}"
        if loaded.issued_at is not None
        else ""
    )
    if loaded.signature == "verified":
        return f"verified: {signed}"
    if loaded.signature == "unverified":
        return f"UNVERIFIED: claims to be {signed}; pass --alliance-key and --alliance to check"
    if trust.key is not None:
        return "none: an unsigned claims file, so nothing was verified with --alliance-key"
    return "none: an unsigned claims file"


@mapping_app.command()
@reports_errors
def show(
    table_path: Annotated[
        Path,
        typer.Argument(
            metavar="TABLE",
            help="A table: JSON claims (.json) or a signed mapping-table+jwt (.jwt).",
            show_default=False,
        ),
    ],
    summary_path: Annotated[
        Path | None,
        typer.Option(
            "--summary",
            metavar="SUMMARY.json",
            help="The city's distribution summary (the one the table was built from, or a "
            "later month's): also show, for each published threshold, the share of its "
            "residents whose alliance score reaches it beside the reference's share, the "
            "least error any table could reach there, and whether the goal is met.",
            show_default=False,
        ),
    ] = None,
    alliance_key: AllianceKeyOption = None,
    alliance: AllianceOption = None,
    scale_path: ScaleOption = None,
) -> None:
    """Show a mapping table: what it was built from, its validity and a summary of its knots.

    A signed table is verified when --alliance-key and --alliance are given, and marked
    UNVERIFIED otherwise. With --summary, also its fairness per threshold
    (docs/MAPPINGS.md section 13).
    """
    trust = _trust(scale_path, alliance_key, alliance)
    loaded = _load_table(table_path, "TABLE", trust)
    summary = _load_summary(summary_path) if summary_path is not None else None
    table = loaded.table
    scale = trust.scale
    which = "the scale given" if trust.scale_given else "the default alliance scale"
    scale_note = (
        f"{which} ({table.alliance_range[0]}..{table.alliance_range[1]})"
        if table.scale_sha256 == scale.sha256
        else f"NOT {which}: sha256 {table.scale_sha256[:16]}..."
    )
    method = table.method + (f" (anchor {table.anchor})" if table.anchor else "")
    facts = [
        ("city", table.city),
        ("local scale", _describe_scale(table)),
        ("method", method),
        ("smoothing", _describe_smoothing(table.smoothing)),
        ("population", f"{table.population:,}"),
        ("snapshot", table.snapshot),
        ("model version", table.model_version),
        ("version", str(table.version)),
        ("valid", f"{format_time(table.valid_from)} to {format_time(table.valid_to)}"),
        ("content hash", table.sha256),
        ("built for", scale_note),
        ("signature", _describe_signature(loaded, trust)),
    ]
    typer.echo(f"Mapping table {table_path}")
    for name, value in facts:
        typer.echo(f"  {name:<14} {value}")
    typer.echo("")
    rows = [[table.local_scale.name, "alliance equivalent", "score", "band", "SE"]]
    for index in _knot_rows(table):
        local, equivalent, se = table.knots[index]
        score = table.apply(table.local_scale.labels[index] if table.local_scale.labels else local)
        rows.append(
            [
                _local_label(table, local),
                f"{equivalent:.2f}",
                str(score),
                scale.band_of(score),
                "n/a" if se is None else f"{se:.2f}",
            ]
        )
    for line in columns(rows, left=(3,)):
        typer.echo(line)
    if summary is not None:
        assert summary_path is not None
        _require_scale(loaded, trust)
        typer.echo("")
        for line in _threshold_lines(summary, table, scale, summary_path):
            typer.echo(line)


def _threshold_lines(
    summary: DistributionSummary, table: MappingTable, scale: AllianceScale, path: Path
) -> list[str]:
    """The table's fairness per threshold for the residents of ``summary``."""
    from mappings import GOAL_TOLERANCE, threshold_shares

    with _reading(path, "--summary"):
        shares = threshold_shares(summary, table, scale)
    rows = [
        ["threshold", "city", "reference", "difference", "least error", "straddling point", "goal"]
    ]
    for share in shares:
        point = (
            share.straddling_point
            if isinstance(share.straddling_point, str)
            else _local_label(table, share.straddling_point)
        )
        rows.append(
            [
                str(share.threshold),
                f"{share.city_share:.1%}",
                f"{share.reference_share:.1%}",
                f"{100 * share.error:+.2f} pp",
                f"{100 * share.least_error:.2f} pp",
                f"{point} ({share.straddling_share:.1%})",
                share.verdict,
            ]
        )
    met = sum(share.meets_goal for share in shares)
    return [
        f"Fairness per threshold: the {summary.population:,} residents of {path} "
        f"(snapshot {summary.snapshot})",
        *columns(rows, left=(5, 6)),
        f"  goal met at {met} of {len(shares)} thresholds (within {100 * GOAL_TOLERANCE:g} pp "
        "of the reference, or at the least error where the scale is coarser)",
    ]


# --- applying ------------------------------------------------------------------------------


def _band_names(scale: AllianceScale) -> np.ndarray[Any, np.dtype[np.object_]]:
    # One band_of per alliance score, then a look-up per resident score.
    import numpy as np

    return np.array([scale.band_of(s) for s in range(scale.min, scale.max + 1)], dtype=object)


def _apply_csv(
    path: Path, table: MappingTable, to: MappingTable | None, scale: AllianceScale
) -> None:
    import numpy as np

    from mappings import MappingError, compose

    bands = _band_names(scale)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    header = ["score", "alliance_score", "band"]
    if to is not None:
        header.append(f"{to.city}_score")

    def flush(chunk: list[tuple[int, str]]) -> None:
        if not chunk:
            return
        cells = [cell for _, cell in chunk]
        try:
            scores = _score_array(cells, table)
            alliance = np.asarray(table.apply(scores))
        except (MappingError, ValueError) as exc:
            _raise_for_first_bad_row(chunk, table)
            code = exc.code if isinstance(exc, MappingError) else "invalid_csv"
            raise InputError(code, "--csv", str(exc)) from exc
        columns: list[Sequence[Any]] = [cells, alliance.tolist(), bands[alliance - scale.min]]
        if to is not None:
            columns.append(compose(table, to, scores))
        writer.writerows(zip(*columns, strict=True))

    try:
        file = path.open(newline="", encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("file_not_found", "--csv", f"no such file: {path}") from exc
    except OSError as exc:
        raise InputError("file_error", "--csv", f"cannot read {path}: {exc.strerror}") from exc
    with file:
        writer.writerow(header)
        chunk: list[tuple[int, str]] = []
        first = True
        try:
            for line, row in enumerate(csv.reader(file), start=1):
                cell = row[0].strip() if row else ""
                if not cell:
                    continue
                if first:
                    first = False
                    if not _is_score(cell, table):
                        continue  # a header
                chunk.append((line, cell))
                if len(chunk) == CSV_CHUNK:
                    flush(chunk)
                    chunk = []
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError("invalid_csv", "--csv", f"{path}: {exc}") from exc
        flush(chunk)


def _score_array(cells: list[str], table: MappingTable) -> Any:
    """Scores as one array for the vectorised apply: integers where they all are (the
    table's fast look-up), else floats; grades stay strings. Raises ValueError."""
    import numpy as np

    if table.local_scale.labels is not None:
        return np.array(cells)
    values = np.array(cells, dtype=np.float64)
    if np.all(np.isfinite(values)) and np.all(values == np.floor(values)):
        return values.astype(np.int64)
    return values


def _raise_for_first_bad_row(chunk: list[tuple[int, str]], table: MappingTable) -> None:
    """Find the line a vectorised call refused, so the error can name it."""
    from mappings import MappingError

    for line, cell in chunk:
        try:
            table.local_scale.index_of(_parse_score(cell, table))
        except MappingError as exc:
            raise InputError(exc.code, f"--csv line {line}", mapping_message(exc)) from exc


def _is_score(cell: str, table: MappingTable) -> bool:
    from mappings import MappingError

    try:
        table.local_scale.index_of(_parse_score(cell, table))
    except MappingError:
        return False
    return True


@mapping_app.command()
@reports_errors
def apply(
    table_path: Annotated[
        Path,
        typer.Argument(
            metavar="TABLE", help="The city's table (.json or .jwt).", show_default=False
        ),
    ],
    scores: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SCORE...",
            help="Local scores (or grades) to carry to the alliance scale.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            metavar="TABLE2",
            help="Another city's table: also show the equivalent score in that city.",
            show_default=False,
        ),
    ] = None,
    csv_path: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE",
            help="A CSV file whose first column holds scores (a header row is skipped): "
            "streams score,alliance_score,band[,<city>_score] as CSV to standard output.",
            show_default=False,
        ),
    ] = None,
    alliance_key: AllianceKeyOption = None,
    alliance: AllianceOption = None,
    scale_path: ScaleOption = None,
) -> None:
    """Carry local scores to the alliance scale: alliance score and band for each.

    With --to, also the equivalent score in a second city (through the alliance scale).
    Example: ccx mapping apply xiamen.table.json 650 731 --to fuzhou.table.json
    """
    from mappings import compose

    if not scores and csv_path is None:
        raise InputError("missing_argument", "SCORE", "give scores, or a CSV file with --csv")
    if scores and csv_path is not None:
        raise InputError("missing_argument", "SCORE", "give scores or --csv, not both")
    trust = _trust(scale_path, alliance_key, alliance)
    loaded = _load_table(table_path, "TABLE", trust)
    _require_scale(loaded, trust)
    second = _load_table(to, "--to", trust) if to is not None else None
    if second is not None:
        _require_scale(second, trust)
    for item in (loaded, second):
        if item is not None:
            _warn_unverified(item)
    table = loaded.table
    other = second.table if second is not None else None
    if csv_path is not None:
        _apply_csv(csv_path, table, other, trust.scale)
        return
    assert scores
    parsed = [_parse_score(text, table) for text in scores]
    alliance_scores = [table.apply(score) for score in parsed]
    rows = [
        [text, str(score), trust.scale.band_of(score)]
        for text, score in zip(scores, alliance_scores, strict=True)
    ]
    header = [table.local_scale.name, "alliance", "band"]
    if other is not None:
        header.append(f"{other.local_scale.name} ({other.city})")
        for row, score in zip(rows, parsed, strict=True):
            row.append(str(compose(table, other, score)))
    for line in columns([header, *rows], left=(2,)):
        typer.echo(line)


# --- plotting and the demo -----------------------------------------------------------------


@mapping_app.command()
@reports_errors
def plot(
    tables: Annotated[
        list[Path],
        typer.Argument(
            metavar="TABLE...", help="One or more tables (.json or .jwt).", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", metavar="FILE.png", help="Where to write the PNG (atomically)."),
    ],
    alliance_key: AllianceKeyOption = None,
    alliance: AllianceOption = None,
    scale_path: ScaleOption = None,
) -> None:
    """Plot each city's curve: alliance score (0..1000) against position on its own scale.

    Draws a band of +-1.96 standard errors around each curve where the table has them,
    the alliance's band boundaries as guides, and under the plot a ruler per city in
    its own units (or grades).
    """
    trust = _trust(scale_path, alliance_key, alliance)
    loaded = [_load_table(path, "TABLE", trust) for path in tables]
    for item in loaded:
        _require_scale(item, trust)
        _warn_unverified(item)
    from alliance.plot import render_curves  # matplotlib is slow to import

    _write(out, render_curves([item.table for item in loaded], trust.scale))
    typer.echo(f"wrote {out}", err=True)


@mapping_app.command("demo-tables")
@reports_errors
def demo_tables(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="FOLDER",
            help="The folder to write into (its parent must exist).",
        ),
    ] = Path("mappings/tables"),
) -> None:
    """Regenerate the demo alliance's synthetic summaries, tables and curves.png.

    Five synthetic cities (Xiamen, Fuzhou, Hangzhou, Quanzhou, Zhangzhou), drawn with a
    fixed seed: the same files every time. Tables are written unsigned: the demo
    alliance's root key is made when the demo alliance is set up, never stored here.
    """
    from alliance.demo_cities import (
        DEMO_CITIES,
        DEMO_SNAPSHOT,
        DEMO_VALID_FROM,
        DEMO_VALID_TO,
        DEMO_VERSION,
        demo_summaries,
    )
    from alliance.plot import render_curves
    from mappings import AllianceScale

    scale = AllianceScale()
    files: dict[str, bytes] = {}
    tables = []
    for city, summary in zip(DEMO_CITIES, demo_summaries(), strict=True):
        table = make_table(
            summary,
            scale,
            version=DEMO_VERSION,
            valid_from=_parse_date(DEMO_VALID_FROM, "valid_from"),
            valid_to=_parse_date(DEMO_VALID_TO, "valid_to"),
            smoothing=city.smoothing,
            standard_errors=city.standard_errors,
            seed=BOOTSTRAP_SEED,
            replications=BOOTSTRAP_REPLICATIONS,
        )
        assert summary.snapshot == DEMO_SNAPSHOT
        files[f"{city.city}.summary.json"] = pretty_json(summary.to_json())
        files[f"{city.city}.table.json"] = pretty_json(table.to_claims())
        tables.append(table)
    files["curves.png"] = render_curves(tables, scale)
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise InputError("file_error", "--out", f"cannot create {out}: {exc.strerror}") from exc
    for name, data in files.items():
        _write(out / name, data)
    typer.echo(f"wrote {len(files)} files to {out}", err=True)
