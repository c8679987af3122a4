"""The report of a synthetic run: the committed demo tables, visits from a seeded generator."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest

from mappings import AllianceScale
from simulator.fairness import city_thresholds, describe_thresholds, fairness_gap
from simulator.observations import CityInfo, Fault, Invariant, Outcome, RunResult, Visit
from simulator.report import summary_lines, write_report

TABLES = Path(__file__).parent.parent.parent / "mappings" / "tables"
CITIES = ("xiamen", "fuzhou", "zhangzhou")
SCORE_NAMES = {"xiamen": "白鹭分", "fuzhou": "茉莉分", "zhangzhou": "水仙等级"}
SCENARIOS = ("library_deposit_free", "hospital_treat_first_pay_later")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STARTED_AT = 1_800_000_000  # 2027-01-15T08:00:00Z


def _city(city: str, residents: int) -> CityInfo:
    return CityInfo(
        city=city,
        name=SCORE_NAMES[city],
        node_id=f"https://{city}.ccx.example",
        residents=residents,
        records=residents * 3,
        holders=residents * 4 // 5,
        summary=json.loads((TABLES / f"{city}.summary.json").read_text(encoding="utf-8")),
        table=json.loads((TABLES / f"{city}.table.json").read_text(encoding="utf-8")),
    )


def _visits(rng: random.Random, count: int, seconds: float) -> list[Visit]:
    """Grants that rise with the percentile, visitors to xiamen's library a little less."""
    visits = []
    for i in range(count):
        home, city = rng.choice(CITIES), rng.choice(CITIES)
        scenario = rng.choice(SCENARIOS)
        percentile = rng.uniform(0, 100)
        draw = rng.random()
        outcome: Outcome
        code: str | None = None
        if draw < 0.04:
            outcome, code = "refused", "status_revoked"
        elif draw < 0.06:
            outcome, code = "unavailable", "node_down | 503"
        else:
            bar = 40 + (15 if home != city and city == "xiamen" else 0)
            granted = percentile + rng.gauss(0, 15) > bar
            outcome = "granted" if granted else "denied"
            code = None if granted else "below_threshold"
        visits.append(
            Visit(
                t=seconds * i / count,
                home=home,
                city=city,
                scenario=scenario,
                percentile=percentile,
                outcome=outcome,
                code=code,
                tier="standard" if outcome == "granted" else None,
            )
        )
    return visits


def _result() -> RunResult:
    rng = random.Random(6)
    return RunResult(
        seed=6,
        started_at=STARTED_AT,
        scale=AllianceScale().to_json(),
        scenarios=list(SCENARIOS),
        cities=[_city("xiamen", 1200), _city("fuzhou", 1500), _city("zhangzhou", 300)],
        visits=_visits(rng, 4000, seconds=20.0),
        latencies={
            "POST /v1/verifications": [rng.lognormvariate(-4.5, 0.5) for _ in range(4000)],
            "GET /v1/status-lists/{id}": [rng.lognormvariate(-6, 0.3) for _ in range(300)],
            "GET /v1/registry": [],
        },
        phases={"start nodes": 3.2, "issue attestations": 5.1, "visits": 20.0, "checks": 0.4},
        faults=[
            Fault(
                "node_down", 6.0, "stopped fuzhou", "fuzhou visits unavailable | others fine", True
            ),
            Fault("revoke", 12.5, "revoked 10 attestations", "2 of 10 still granted", False),
        ],
        invariants=[
            Invariant("revoked_never_granted", False, "2 granted after revocation | ids a, b"),
            Invariant("every_visit_answered", True, "4000 of 4000"),
        ],
        visits_seconds=20.0,
        total_seconds=28.7,
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path, str]:
    result = _result()
    report = write_report(result, tmp_path_factory.mktemp("run") / "out" / "report")
    return result, report, report.read_text(encoding="utf-8")


def _rows(text: str, header_start: str) -> list[str]:
    """The rows of the table whose header begins with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cells(row: str) -> list[str]:
    """A table row split on its unescaped pipes."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_the_report_and_every_png_it_links_are_written(
    written: tuple[RunResult, Path, str],
) -> None:
    _, report, text = written
    assert report.name == "report.md"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == ["curves.png", "grant_rates.png", "latency.png", "timeline.png"]
    for link in links:
        assert (report.parent / link).read_bytes().startswith(PNG_SIGNATURE), link
    assert sorted(p.name for p in report.parent.iterdir()) == sorted([*links, "report.md"])


def test_the_report_has_every_section_in_order(written: tuple[RunResult, Path, str]) -> None:
    _, _, text = written
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# Simulation report",
        "## Summary",
        "## Phases",
        "## Mapping curves",
        "## Fairness per threshold",
        "## Grant rates by home-city percentile",
        "## Latency",
        "## Throughput",
        "## Outcomes",
        "## Domestic-service checks",
        "## Faults",
        "## Invariants",
    ]
    assert "started 2027-01-15 08:00:00 UTC" in text


def test_the_summary_s_headline_is_the_fairness_per_threshold(
    written: tuple[RunResult, Path, str],
) -> None:
    result, _, text = written
    measured = city_thresholds(result.cities, AllianceScale())
    headline = f"- **Fairness per threshold:** {describe_thresholds(measured)}"
    assert headline in text
    # the committed demo tables meet the goal everywhere; Zhangzhou's grades set the floor
    assert "✓ goal met at 15 of 15 (city, threshold) pairs: 10 within 1 pp of the" in headline
    assert "reference share, 5 at the least error of a coarser scale;" in headline
    assert "largest difference -10.25 pp at zhangzhou ≥ 600 (least error 10.25 pp: its " in headline
    assert headline.endswith("point A holds 38.2% of the city)")
    assert "Fairness gap" not in text


def test_the_per_threshold_table_has_a_row_per_city_and_threshold(
    written: tuple[RunResult, Path, str],
) -> None:
    result, _, text = written
    rows = [_cells(row) for row in _rows(text, "| city | threshold |")]
    measured = city_thresholds(result.cities, AllianceScale())
    expected = [(c.city, s) for c in measured for s in c.shares]
    assert len(rows) == len(expected) == 15
    for row, (city, share) in zip(rows, expected, strict=True):
        assert row[:2] == [city, f"≥ {share.threshold}"]
        assert row[2:6] == [
            f"{share.city_share:.1%}",
            f"{share.reference_share:.1%}",
            f"{100 * share.error:+.2f} pp",
            f"{100 * share.least_error:.2f} pp",
        ]
        assert row[7] == f"✓ {share.verdict}"
    zhangzhou_600 = rows[11]
    assert zhangzhou_600[:2] == ["zhangzhou", "≥ 600"]
    assert zhangzhou_600[6:] == ["A (38.2%)", "✓ met: at the floor"]


def test_a_table_that_misses_and_a_city_without_one_are_said(tmp_path: Path) -> None:
    xiamen, fuzhou = _city("xiamen", 100), _city("fuzhou", 100)
    generous = {
        **xiamen.table,
        "knots": [[x, min(a + 25, 1000), se] for x, a, se in xiamen.table["knots"]],
    }
    result = RunResult(
        seed=3, started_at=0, scale=AllianceScale().to_json(), scenarios=[],
        cities=[replace(xiamen, table=generous), replace(fuzhou, table={})],
    )  # fmt: skip

    text = write_report(result, tmp_path).read_text(encoding="utf-8")

    headline = next(line for line in text.splitlines() if "**Fairness per threshold:**" in line)
    assert "✗ goal met at 0 of 5 (city, threshold) pairs" in headline
    assert "missed: xiamen ≥ 550 (MISSED by " in headline
    assert headline.endswith("; not measured: fuzhou")
    rows = [_cells(row) for row in _rows(text, "| city | threshold |")]
    assert all(row[7].startswith("✗ MISSED by ") for row in rows[:5])
    assert rows[5] == ["fuzhou", "–", "–", "–", "–", "–", "–", "no mapping table"]


def test_the_grant_rates_keep_the_largest_visitor_local_difference(
    written: tuple[RunResult, Path, str],
) -> None:
    result, _, text = written
    gap = fairness_gap(result.visits)
    # the synthetic run has enough visits to compare some cells
    assert gap.where is not None
    assert gap.local_rate is not None
    assert gap.visitor_rate is not None
    assert f"**Largest visitor−local difference:** {gap.describe()}." in text
    top = _rows(text, "| verifying city |")
    assert 1 <= len(top) <= 5
    city, scenario, bucket = gap.where
    assert _cells(top[0])[:3] == [city, scenario, f"{bucket * 10}–{bucket * 10 + 10}"]
    assert _cells(top[0])[-1] == f"{gap.visitor_rate - gap.local_rate:+.3f}"


def test_faults_and_invariants_are_tables_with_their_rows_and_pipes_escaped(
    written: tuple[RunResult, Path, str],
) -> None:
    _, _, text = written
    assert _rows(text, "| at (s) |") == [
        r"| 6.0 | node_down | stopped fuzhou | fuzhou visits unavailable \| others fine | ✓ |",
        "| 12.5 | revoke | revoked 10 attestations | 2 of 10 still granted | ✗ |",
    ]
    assert _rows(text, "| invariant |") == [
        r"| revoked_never_granted | ✗ | 2 granted after revocation \| ids a, b |",
        "| every_visit_answered | ✓ | 4000 of 4000 |",
    ]
    assert "- **Invariants:** ✗ 1 of 2 failed: revoked_never_granted" in text
    assert "- **Faults:** ✗ 1 of 2 handled as expected" in text


def test_every_table_row_has_as_many_cells_as_its_header(
    written: tuple[RunResult, Path, str],
) -> None:
    _, _, text = written
    lines = text.splitlines()
    tables = 0
    for i, line in enumerate(lines):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            tables += 1
            width = len(_cells(line))
            assert re.fullmatch(r"\|(:?-+:?\|)+", lines[i + 1]), lines[i + 1]
            assert len(_cells(lines[i + 1])) == width
            for row in _rows(text[text.index(line) :], line):
                assert len(_cells(row)) == width, row
    assert tables >= 9


def test_latency_outcomes_and_codes_are_counted(written: tuple[RunResult, Path, str]) -> None:
    result, _, text = written
    latency = {_cells(row)[0]: _cells(row) for row in _rows(text, "| endpoint |")}
    assert latency["`POST /v1/verifications`"][1] == "4,000"
    assert latency["`GET /v1/registry`"][1:] == ["0", "–", "–", "–", "–"]
    outcomes = {_cells(row)[0]: _cells(row)[1] for row in _rows(text, "| outcome |")}
    counts = {o: sum(v.outcome == o for v in result.visits) for o in outcomes}
    assert outcomes == {o: f"{n:,}" for o, n in counts.items()}
    codes = [_cells(row) for row in _rows(text, "| code |")]
    assert [r"`node_down \| 503`", "unavailable", f"{counts['unavailable']:,}"] in codes


def test_the_same_result_gives_the_same_report_and_plots(
    written: tuple[RunResult, Path, str], tmp_path: Path
) -> None:
    _, first, text = written

    second = write_report(_result(), tmp_path)

    assert second.read_text(encoding="utf-8") == text
    for png in sorted(first.parent.glob("*.png")):
        assert (tmp_path / png.name).read_bytes() == png.read_bytes(), png.name


def test_an_empty_run_still_writes_a_report_that_says_so(tmp_path: Path) -> None:
    empty = RunResult(seed=0, started_at=0, scale={}, scenarios=[])

    report = write_report(empty, tmp_path)

    text = report.read_text(encoding="utf-8")
    assert "started 1970-01-01 00:00:00 UTC" in text
    assert "- **Visits:** 0" in text
    assert "- **Fairness per threshold:** n/a: no city with a table and a summary" in text
    for said in (
        "No phases were timed.",
        "No mapping tables to plot.",
        "No decided visits",
        "No HTTP calls were timed.",
        "No visits: no timeline to plot.",
        "No faults were injected in this run.",
        "No invariants were checked in this run.",
    ):
        assert said in text
    assert "![" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_plots_of_an_earlier_run_in_the_same_folder_are_removed(tmp_path: Path) -> None:
    (tmp_path / "curves.png").write_bytes(PNG_SIGNATURE)
    (tmp_path / "notes.txt").write_text("not the report's", encoding="utf-8")
    result = RunResult(seed=1, started_at=0, scale={}, scenarios=[])
    result.visits = [Visit(0.5, "fuzhou", "xiamen", "library_deposit_free", 50.0, "refused")]

    write_report(result, tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "report.md", "timeline.png"]


def test_only_refused_visits_give_a_timeline_but_no_grant_rates(tmp_path: Path) -> None:
    visits = [
        Visit(
            t=0.5 * i,
            home="fuzhou",
            city="xiamen",
            scenario="library_deposit_free",
            percentile=50.0,
            outcome="refused",
            code="status_revoked",
        )
        for i in range(10)
    ]
    result = RunResult(seed=2, started_at=0, scale={}, scenarios=[], visits=visits)
    result.visits_seconds = 5.0

    text = write_report(result, tmp_path).read_text(encoding="utf-8")

    assert "No decided visits: no grant rates to show." in text
    assert "![Visits per second over the visits phase](timeline.png)" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "timeline.png"]


def test_summary_lines_for_the_terminal(written: tuple[RunResult, Path, str]) -> None:
    result, _, _ = written
    lines = summary_lines(result)
    assert 6 <= len(lines) <= 12
    assert lines[0] == "seed 6: 3 cities, 3,000 residents, 2,400 holders"
    assert lines[1].startswith("visits: 4,000 in 20.0 s (200.0/s): ")
    measured = city_thresholds(result.cities, AllianceScale())
    assert f"fairness per threshold: {describe_thresholds(measured)}" in lines
    assert "  ✗ revoked_never_granted: 2 granted after revocation | ids a, b" in lines
    assert "  ✓ every_visit_answered" in lines
    assert "faults: 1 of 2 handled as expected" in lines
    assert "  ✗ revoke at 12.5 s: 2 of 10 still granted" in lines


def test_summary_lines_of_an_empty_run() -> None:
    lines = summary_lines(RunResult(seed=0, started_at=0, scale={}, scenarios=[]))
    assert lines == [
        "seed 0: 0 cities, 0 residents, 0 holders",
        "visits: 0 in 0.0 s (0.0/s): 0 granted, 0 denied, 0 refused, 0 unavailable",
        "wall time: 0.0 s for the whole run",
        "fairness per threshold: n/a: no city with a table and a summary",
        "invariants: none checked",
        "faults: 0 of 0 handled as expected",
    ]


def test_summary_lines_name_the_learned_city_and_the_domestic_checks() -> None:
    """Issue 18: make demo's terminal summary says which city scores with a fitted
    scorecard (from the model files the nodes run with) and counts the housekeepers'
    checks apart from the visits."""
    result = RunResult(seed=0, started_at=0, scale={}, scenarios=[])
    xiamen = _city("xiamen", 1000)
    result.cities = [xiamen, replace(xiamen, city="hangzhou")]  # a name is what it reads
    result.domestic = [
        Visit(1.0, "hangzhou", "xiamen", "domestic_agency_hiring", 50.0, "granted", None, "eligible"),
        Visit(2.0, "xiamen", "xiamen", "domestic_family_check", 20.0, "denied", "requirement_unmet"),
    ]  # fmt: skip
    lines = summary_lines(result)
    [learned] = [line for line in lines if line.startswith("learned scorecard: ")]
    assert learned.startswith("learned scorecard: hangzhou (")
    assert "xiamen" not in learned
    assert "domestic-service checks: 2: 1 granted, 1 denied, 0 refused, 0 unavailable" in lines
    assert not any(line.startswith("learned scorecard") for line in summary_lines(
        RunResult(seed=0, started_at=0, scale={}, scenarios=[])))  # fmt: skip


def test_a_fault_s_details_are_listed_under_the_table_escaped_and_capped(tmp_path: Path) -> None:
    result = RunResult(seed=1, started_at=0, scale={}, scenarios=[])
    details = [f"xiamen resident at fuzhou {i} s after | withdrawing" for i in range(25)]
    result.faults = [
        Fault("consent withdrawn", 3.0, "withdrew", "2 decided late", ok=False, details=details),
        Fault("alliance host down", 5.0, "stopped", "fine", ok=True),
    ]
    text = write_report(result, tmp_path).read_text(encoding="utf-8")
    listed = text[text.index("consent withdrawn, in detail:") :]
    items = [line for line in listed.splitlines() if line.startswith("- ")]
    assert items[0] == "- xiamen resident at fuzhou 0 s after \\| withdrawing"
    assert len(items) == 21
    assert items[-1] == "- ... and 5 more"
    assert "alliance host down, in detail:" not in text  # no details, no list
