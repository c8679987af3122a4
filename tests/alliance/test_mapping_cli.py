"""`ccx mapping`: build, show, apply, plot and demo-tables, run through the CLI itself.

Bad input must end in one line ``error [code] field: message`` on stderr, exit status
2, and no file written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from alliance.mapping_cli import PASSPHRASE_ENV
from ccx.app import app
from keys import Keyring
from mappings import AllianceScale, DistributionSummary, MappingTable, compose, threshold_shares
from tests.cli_results import assert_one_line_error, ok
from tests.conftest import ALLIANCE, NOW, ec_key

TABLES = Path(__file__).parent.parent.parent / "mappings" / "tables"
CITIES = ("xiamen", "fuzhou", "hangzhou", "quanzhou", "zhangzhou")
VALIDITY = ("--version", "1", "--valid-from", "2026-11-01", "--valid-to", "2027-11-01")
PASSPHRASE = "correct horse battery staple"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ccx(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def committed_table(city: str) -> MappingTable:
    return MappingTable.from_claims(json.loads((TABLES / f"{city}.table.json").read_bytes()))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tables")
    result = ccx("mapping", "demo-tables", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def write_keyring(folder: Path, name: str, first_seed: int) -> tuple[Path, Path]:
    """A keyring file (deterministic keys) and its active public JWK."""
    seeds = iter(range(first_seed, first_seed + 10))
    ring = Keyring.create(now=NOW, generate=lambda alg: ec_key(next(seeds)))
    ring_path, jwk_path = folder / f"{name}.keyring.json", folder / f"{name}.jwk"
    ring_path.write_bytes(ring.dump(PASSPHRASE.encode()))
    jwk_path.write_text(json.dumps(ring.active.public_jwk()))
    return ring_path, jwk_path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("signed")
    ring, jwk = write_keyring(folder, "alliance", 300)
    _, other_jwk = write_keyring(folder, "other", 400)
    token = folder / "xiamen.table.jwt"
    result = ccx(
        "mapping", "build", TABLES / "xiamen.summary.json", *VALIDITY,
        "--sign", "--keyring", ring, "--alliance", ALLIANCE, "--out", token,
        env={PASSPHRASE_ENV: PASSPHRASE},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return {"token": token, "jwk": jwk, "other_jwk": other_jwk, "folder": folder}


# --- demo-tables and build ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["summary", "table"])
@pytest.mark.parametrize("city", CITIES)
def test_demo_tables_regenerates_the_committed_files_byte_for_byte(
    regenerated: Path, city: str, kind: str
) -> None:
    name = f"{city}.{kind}.json"
    assert (regenerated / name).read_bytes() == (TABLES / name).read_bytes()


def test_demo_tables_writes_the_plot_and_nothing_else(regenerated: Path) -> None:
    expected = {f"{c}.{k}.json" for c in CITIES for k in ("summary", "table")} | {"curves.png"}
    assert {p.name for p in regenerated.iterdir()} == expected
    assert (regenerated / "curves.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("city", "options"),
    [
        ("xiamen", ()),
        ("fuzhou", ()),
        ("hangzhou", ()),
        ("quanzhou", ()),
        ("zhangzhou", ()),
    ],
)
def test_build_from_a_committed_summary_gives_the_committed_table(
    tmp_path: Path, city: str, options: tuple[str, ...]
) -> None:
    out = tmp_path / "table.json"
    summary = TABLES / f"{city}.summary.json"
    result = ccx("mapping", "build", summary, *VALIDITY, *options, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (TABLES / f"{city}.table.json").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]  # no temporary left


def test_build_without_out_prints_the_claims(tmp_path: Path) -> None:
    result = ccx("mapping", "build", TABLES / "zhangzhou.summary.json", *VALIDITY)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == committed_table("zhangzhou").to_claims()


# --- signing and show -----------------------------------------------------------------------


def test_signed_table_verifies_with_the_alliance_key(signed: dict[str, Path]) -> None:
    result = ccx(
        "mapping", "show", signed["token"], "--alliance-key", signed["jwk"], "--alliance", ALLIANCE
    )
    assert result.exit_code == 0, result.output
    assert f"verified: signed by {ALLIANCE}" in result.stdout
    assert "UNVERIFIED" not in result.stdout
    assert committed_table("xiamen").sha256 in result.stdout  # the envelope is not hashed


def test_signed_table_without_a_key_is_shown_unverified(signed: dict[str, Path]) -> None:
    result = ccx("mapping", "show", signed["token"])
    assert result.exit_code == 0, result.output
    assert "UNVERIFIED" in result.stdout


def test_show_prints_the_facts_and_knots_every_tenth_of_the_scale() -> None:
    result = ccx("mapping", "show", TABLES / "hangzhou.table.json")
    assert result.exit_code == 0, result.output
    table = committed_table("hangzhou")
    for fact in ("hangzhou", "钱江分, 350..950", "900,000", "2026-11-01 to 2027-11-01"):
        assert fact in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()[-11:]]
    assert [int(row[0]) for row in rows] == list(range(350, 951, 60))
    assert [int(row[2]) for row in rows] == [table.apply(int(row[0])) for row in rows]


def test_show_lists_every_grade_of_a_graded_table() -> None:
    result = ccx("mapping", "show", TABLES / "zhangzhou.table.json")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[-6:]]
    assert [row[0] for row in rows] == ["D", "C", "B", "A", "AA", "AAA"]


def threshold_rows(result: Result) -> list[list[str]]:
    """The rows of show's per-threshold table, split on two spaces or more."""
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Fairness per threshold"))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start + 2 : start + 7]]


@pytest.mark.parametrize("city", CITIES)
def test_show_with_a_summary_gives_the_fairness_per_threshold(city: str) -> None:
    summary = TABLES / f"{city}.summary.json"
    result = ccx("mapping", "show", TABLES / f"{city}.table.json", "--summary", summary)
    rows = threshold_rows(result)
    shares = threshold_shares(
        DistributionSummary.from_json(json.loads(summary.read_bytes())),
        committed_table(city),
        AllianceScale(),
    )
    assert [int(row[0]) for row in rows] == [550, 600, 650, 700, 750]
    for row, share in zip(rows, shares, strict=True):
        assert row[1:5] == [
            f"{share.city_share:.1%}",
            f"{share.reference_share:.1%}",
            f"{100 * share.error:+.2f} pp",
            f"{100 * share.least_error:.2f} pp",
        ]
        assert row[6] == share.verdict
    # The demo alliance's goal: every committed table meets it at every threshold.
    assert "goal met at 5 of 5 thresholds" in result.stdout


def test_show_names_the_point_that_cannot_be_split_on_a_graded_scale() -> None:
    result = ccx(
        "mapping", "show", TABLES / "zhangzhou.table.json",
        "--summary", TABLES / "zhangzhou.summary.json",
    )  # fmt: skip
    rows = threshold_rows(result)
    # 38% of Zhangzhou is on grade A: at 600 the best any table does is 10 points off.
    assert rows[1][:2] == ["600", "39.9%"]
    assert rows[1][4:] == ["10.25 pp", "A (38.2%)", "met: at the floor"]


def test_show_says_when_a_table_misses_the_goal(tmp_path: Path) -> None:
    # Quanzhou linked the way it was before issue 18, presmoothed: 600 is missed.
    out = tmp_path / "smoothed.json"
    summary = TABLES / "quanzhou.summary.json"
    smoothing = ("--smoothing", "loglinear:6", "--se", "none")
    ok(ccx("mapping", "build", summary, *VALIDITY, *smoothing, "--out", out))
    result = ccx("mapping", "show", out, "--summary", summary)
    rows = threshold_rows(result)
    assert rows[1][0] == "600"
    assert rows[1][6].startswith("MISSED by ")
    assert "goal met at 4 of 5 thresholds" in result.stdout


def test_show_refuses_another_city_s_summary() -> None:
    result = ccx(
        "mapping", "show", TABLES / "xiamen.table.json",
        "--summary", TABLES / "fuzhou.summary.json",
    )  # fmt: skip
    assert_one_line_error(result, "invalid_mapping_input", "city")
    assert "the summary is fuzhou's, the table xiamen's" in result.stderr
    assert "fuzhou.summary.json" in result.stderr


def test_show_refuses_a_summary_for_a_table_of_another_scale(tmp_path: Path) -> None:
    scale = tmp_path / "scale.json"
    scale.write_text(json.dumps(AllianceScale(mean=500).to_json()))
    result = ccx(
        "mapping", "show", TABLES / "xiamen.table.json", "--scale", scale,
        "--summary", TABLES / "xiamen.summary.json",
    )  # fmt: skip
    assert_one_line_error(result, "invalid_mapping_input", "scale_sha256")


def test_table_signed_by_another_key_is_refused_and_nothing_is_written(
    signed: dict[str, Path],
) -> None:
    out = signed["folder"] / "refused.png"
    result = ccx(
        "mapping", "plot", signed["token"], "--alliance-key", signed["other_jwk"],
        "--alliance", ALLIANCE, "--out", out,
    )  # fmt: skip
    assert_one_line_error(result, "unknown_kid", "TABLE")
    assert not out.exists()


def test_table_signed_for_another_alliance_is_refused(signed: dict[str, Path]) -> None:
    result = ccx(
        "mapping", "show", signed["token"], "--alliance-key", signed["jwk"],
        "--alliance", "https://another-alliance.example",
    )  # fmt: skip
    assert_one_line_error(result, "invalid_mapping_input", "iss")


def test_wrong_passphrase_is_one_line_and_writes_nothing(
    signed: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "table.jwt"
    result = ccx(
        "mapping", "build", TABLES / "xiamen.summary.json", *VALIDITY, "--sign",
        "--keyring", signed["folder"] / "alliance.keyring.json", "--alliance", ALLIANCE,
        "--out", out, env={PASSPHRASE_ENV: "not the passphrase"},
    )  # fmt: skip
    assert_one_line_error(result, "wrong_passphrase", "--keyring")
    assert list(tmp_path.iterdir()) == []


# --- apply ----------------------------------------------------------------------------------


def output_rows(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    return [line.split() for line in result.stdout.splitlines()[1:]]


def test_apply_gives_the_numbers_of_mapping_table_apply() -> None:
    scores = ["0", "350", "500", "731", "731.5", "999", "1000"]
    rows = output_rows(ccx("mapping", "apply", TABLES / "xiamen.table.json", *scores))
    table = committed_table("xiamen")
    assert [row[0] for row in rows] == scores
    assert [int(row[1]) for row in rows] == [table.apply(float(s)) for s in scores]
    assert [row[2] for row in rows] == [
        {0: "poor", 550: "fair", 600: "good", 700: "very_good", 750: "excellent"}[
            max(b for b in (0, 550, 600, 700, 750) if b <= table.apply(float(s)))
        ]
        for s in scores
    ]


def test_apply_grades() -> None:
    rows = output_rows(ccx("mapping", "apply", TABLES / "zhangzhou.table.json", "D", "AAA"))
    table = committed_table("zhangzhou")
    assert [int(row[1]) for row in rows] == [table.apply("D"), table.apply("AAA")]


def test_apply_to_another_city_composes_through_the_alliance_scale() -> None:
    scores = ["400", "500", "650", "800"]
    result = ccx(
        "mapping", "apply", TABLES / "hangzhou.table.json", *scores,
        "--to", TABLES / "zhangzhou.table.json",
    )  # fmt: skip
    rows = output_rows(result)
    first, second = committed_table("hangzhou"), committed_table("zhangzhou")
    assert [row[3] for row in rows] == [compose(first, second, int(s)) for s in scores]


def test_apply_csv_streams_the_vectorised_apply(tmp_path: Path) -> None:
    scores = np.random.default_rng(7).integers(0, 1001, size=2000)
    source = tmp_path / "scores.csv"
    source.write_text("score\n" + "\n".join(str(s) for s in scores) + "\n")
    result = ccx(
        "mapping", "apply", TABLES / "xiamen.table.json", "--csv", source,
        "--to", TABLES / "fuzhou.table.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "score,alliance_score,band,fuzhou_score"
    rows = [line.split(",") for line in lines[1:]]
    xiamen, fuzhou = committed_table("xiamen"), committed_table("fuzhou")
    assert [int(r[0]) for r in rows] == scores.tolist()
    assert [int(r[1]) for r in rows] == xiamen.apply(scores).tolist()
    assert [int(r[3]) for r in rows] == list(compose(xiamen, fuzhou, scores))


def test_apply_csv_names_the_line_of_a_bad_score(tmp_path: Path) -> None:
    source = tmp_path / "scores.csv"
    source.write_text("score\n700\n1200\n")
    result = ccx("mapping", "apply", TABLES / "xiamen.table.json", "--csv", source)
    assert_one_line_error(result, "invalid_mapping_input", "--csv line 3")


# --- plot -----------------------------------------------------------------------------------


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    result = ccx(
        "mapping", "plot", TABLES / "fuzhou.table.json", TABLES / "zhangzhou.table.json",
        "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000


# --- bad input ------------------------------------------------------------------------------


def summary_with(tmp_path: Path, change: Any) -> Path:
    summary = json.loads((TABLES / "xiamen.summary.json").read_bytes())
    change(summary)
    path = tmp_path / "bad.summary.json"
    path.write_text(json.dumps(summary, ensure_ascii=False))
    return path


def negative_count(summary: dict[str, Any]) -> None:
    summary["counts"][3] = -5


def histogram_too_short(summary: dict[str, Any]) -> None:
    summary["counts"].pop()


@pytest.mark.parametrize(
    ("change", "extra", "code", "field"),
    [
        (negative_count, (), "invalid_mapping_input", "counts[3]"),
        (histogram_too_short, (), "invalid_mapping_input", "counts"),
        (None, ("--smoothing", "wobbly"), "invalid_mapping_input", "smoothing"),
        (None, ("--se", "jackknife"), "invalid_mapping_input", "se"),
        (None, ("--valid-to", "2027-02-30"), "invalid_date", "--valid-to"),
        ("missing", (), "file_not_found", "SUMMARY"),
        ("not json", (), "invalid_json", "SUMMARY"),
    ],
    ids=[
        "negative-count",
        "histogram-of-wrong-length",
        "unknown-smoothing",
        "unknown-standard-errors",
        "impossible-date",
        "missing-file",
        "not-json",
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, change: Any, extra: tuple[str, ...], code: str, field: str
) -> None:
    if change == "missing":
        summary = tmp_path / "absent.summary.json"
    elif change == "not json":
        summary = tmp_path / "broken.summary.json"
        summary.write_text('{"city": "xiamen",')
    elif change is None:
        summary = TABLES / "xiamen.summary.json"
    else:
        summary = summary_with(tmp_path, change)
    before = set(tmp_path.iterdir())
    out = tmp_path / "table.json"
    result = ccx("mapping", "build", summary, *VALIDITY, *extra, "--out", out)
    assert_one_line_error(result, code, field)
    assert set(tmp_path.iterdir()) == before


def test_every_mapping_command_has_help() -> None:
    result = ccx("mapping", "--help")
    assert result.exit_code == 0
    for command in ("build", "show", "apply", "plot", "demo-tables"):
        assert command in result.stdout
        assert ccx("mapping", command, "--help").exit_code == 0
