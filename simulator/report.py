"""The run's report: ``report.md`` and the plots it shows, written into one folder.

Markdown for GitHub (every ``|`` in cell text escaped), PNGs beside it, linked by their
file names. The same :class:`RunResult` always gives the same text: nothing in it comes
from the clock of the writing, only ``started_at``, shown in UTC. A run with no visits,
no faults or no cities still gives a whole report that says so.

Plots are drawn with matplotlib's Agg canvas on bare ``Figure`` objects, as
``alliance/plot.py`` does; the mapping curves are that module's.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import textwrap
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import blended_transform_factory

from alliance.plot import cjk_font, render_curves
from cli import write_atomically
from mappings import AllianceScale, MappingError, MappingTable
from simulator.domestic import report_lines as report_domestic
from simulator.fairness import (
    DEFAULT_BUCKETS,
    DEFAULT_MIN_SAMPLES,
    CityThresholds,
    GrantRate,
    Group,
    PooledRateKey,
    bucket_label,
    city_thresholds,
    describe_thresholds,
    fairness_cells,
    fairness_gap,
    pooled_fairness_gap,
    pooled_grant_rates,
)
from simulator.observations import Outcome, RunResult
from simulator.outcomes import learned_cities

__all__ = ["REPORT_NAME", "summary_lines", "write_report"]

REPORT_NAME = "report.md"
CURVES_PNG = "curves.png"
GRANT_RATES_PNG = "grant_rates.png"
LATENCY_PNG = "latency.png"
TIMELINE_PNG = "timeline.png"
_PLOTS = (CURVES_PNG, GRANT_RATES_PNG, LATENCY_PNG, TIMELINE_PNG)

_OUTCOMES: tuple[Outcome, ...] = ("granted", "denied", "refused", "unavailable")
_OUTCOME_COLOURS = {
    "granted": "#2ca02c",
    "denied": "#ff7f0e",
    "refused": "#d62728",
    "unavailable": "#7f7f7f",
}
_LOCAL_COLOUR = "#1f77b4"
_VISITOR_COLOUR = "#d62728"
_GROUP_COLOURS: tuple[tuple[Group, str], ...] = (
    ("local", _LOCAL_COLOUR),
    ("visitor", _VISITOR_COLOUR),
)
_TOP_CELLS = 5
_TOP_CODES = 10
_PANEL_COLUMNS = 3
_TIMELINE_BINS = 40  # about this many bars, on a round width
_BIN_WIDTHS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
_DPI = 110


def write_report(result: RunResult, out_dir: Path) -> Path:
    """Write ``out_dir/report.md`` and its PNGs (creating the folder); return the report's path.

    A plot that has nothing to show is not written, and a stale one of that name left in
    ``out_dir`` by an earlier run is removed, so every image the report links is this
    run's and every PNG of ours in the folder is linked. ``report.md`` is written last.
    A city table that cannot be read is named in the report, not plotted; an empty
    ``result.scale`` means the default scale. Raises MappingError when ``result.scale`` is
    not a scale claim, OSError when the folder or a file cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, bytes] = {}
    measured = city_thresholds(result.cities, _scale(result)[0])
    lines = [
        *_summary_section(result, measured),
        *_phases_section(result),
        *_curves_section(result, plots),
        *_thresholds_section(result, measured),
        *_grant_rates_section(result, plots),
        *_latency_section(result, plots),
        *_throughput_section(result, plots),
        *_outcomes_section(result),
        *report_domestic(result.domestic, result.domestic_cities),  # issue 18
        *_faults_section(result),
        *_invariants_section(result),
    ]
    for name in _PLOTS:
        if name in plots:
            write_atomically(out_dir / name, plots[name])
        else:
            (out_dir / name).unlink(missing_ok=True)
    report = out_dir / REPORT_NAME
    write_atomically(report, ("\n".join(lines).rstrip("\n") + "\n").encode("utf-8"))
    return report


def summary_lines(result: RunResult) -> list[str]:
    """A short summary for the terminal: visits and their rate, the fairness per
    threshold (and each (city, threshold) that misses its goal), the city scoring with a
    learned scorecard and the domestic-service checks (issue 18), each invariant (✓ or ✗,
    with its detail when it fails) and the faults handled as expected. The caller prints
    where the report is."""
    measured = city_thresholds(result.cities, _scale(result)[0])
    outcomes = Counter(visit.outcome for visit in result.visits)
    lines = [
        f"seed {result.seed}: {len(result.cities)} cities, "
        f"{_n(sum(c.residents for c in result.cities))} residents, "
        f"{_n(sum(c.holders for c in result.cities))} holders",
        f"visits: {_n(len(result.visits))} in {result.visits_seconds:.1f} s "
        f"({result.visits_per_second:.1f}/s): {_outcome_counts(outcomes)}",
        f"wall time: {result.total_seconds:.1f} s for the whole run",
        f"fairness per threshold: {describe_thresholds(measured)}",
    ]
    learned = learned_cities([city.city for city in result.cities])
    if learned:  # issue 18: the city that scores with a fitted scorecard
        lines.append(
            "learned scorecard: "
            + ", ".join(f"{city} ({version})" for city, version in learned)
            + "; the others hand-weighted"
        )
    if result.domestic:  # issue 18: housekeepers' checks, apart from the visits
        checked = Counter(check.outcome for check in result.domestic)
        lines.append(
            f"domestic-service checks: {_n(len(result.domestic))}: {_outcome_counts(checked)}"
        )
    if result.invariants:
        lines.append("invariants:")
        lines += [
            f"  {_mark(inv.ok)} {inv.name}" + ("" if inv.ok else f": {inv.detail}")
            for inv in result.invariants
        ]
    else:
        lines.append("invariants: none checked")
    handled = sum(fault.ok for fault in result.faults)
    lines.append(f"faults: {handled} of {len(result.faults)} handled as expected")
    lines += [
        f"  ✗ {fault.name} at {fault.at:.1f} s: {fault.observed}"
        for fault in result.faults
        if not fault.ok
    ]
    return lines


def _pooled(result: RunResult) -> str:
    pooled = pooled_fairness_gap(result.visits)
    return f"{pooled.describe()}, {pooled.buckets} buckets"


# --- sections -------------------------------------------------------------------------------


def _summary_section(result: RunResult, measured: Sequence[CityThresholds]) -> list[str]:
    outcomes = Counter(visit.outcome for visit in result.visits)
    failed = [inv.name for inv in result.invariants if not inv.ok]
    if not result.invariants:
        invariants = "none checked"
    elif failed:
        invariants = f"✗ {len(failed)} of {len(result.invariants)} failed: {', '.join(failed)}"
    else:
        invariants = f"✓ all {len(result.invariants)} hold"
    handled = sum(fault.ok for fault in result.faults)
    faults = (
        f"{_mark(handled == len(result.faults))} {handled} of {len(result.faults)} "
        "handled as expected"
        if result.faults
        else "none injected"
    )
    names = ", ".join(city.city for city in result.cities)
    lines = [
        "# Simulation report",
        "",
        f"Seed {result.seed}, started {_utc(result.started_at)}.",
        "",
        "## Summary",
        "",
        f"- **Cities:** {len(result.cities)}" + (f" ({names})" if names else ""),
        f"- **Residents:** {_n(sum(c.residents for c in result.cities))}, of whom "
        f"{_n(sum(c.holders for c in result.cities))} hold an attestation",
        f"- **Scenarios:** {len(result.scenarios)}"
        + (f" ({', '.join(result.scenarios)})" if result.scenarios else ""),
        f"- **Visits:** {_n(len(result.visits))}"
        + (f": {_outcome_counts(outcomes)}" if result.visits else ""),
        f"- **Throughput:** {result.visits_per_second:.1f} visits/s",
        f"- **Wall time:** visits phase {result.visits_seconds:.1f} s, "
        f"whole run {result.total_seconds:.1f} s",
        f"- **Fairness per threshold:** {describe_thresholds(measured)}",
        f"- **Invariants:** {invariants}",
        f"- **Faults:** {faults}",
        "",
    ]
    learned = learned_cities([city.city for city in result.cities])
    if learned:  # issue 18: a city whose score is a scorecard fitted from outcomes
        models = ", ".join(f"{city} (`{version}`)" for city, version in learned)
        lines[-1:-1] = [
            f"- **Learned scorecard:** {models} scores with a scorecard fitted by `ccx model "
            "fit` from synthetic pay-later outcomes, with reason codes; the other cities with "
            "hand-weighted models (docs/MODELS.md)"
        ]
    if result.cities:
        rows = [
            [
                city.city,
                city.name,
                f"`{city.node_id}`",
                _n(city.residents),
                _n(city.records),
                _n(city.holders),
                _table_note(city.table),
            ]
            for city in result.cities
        ]
        lines += _table(
            ["city", "score", "node", "residents", "records", "holders", "mapping table"],
            rows,
            "lllrrrl",
        )
    return lines


def _phases_section(result: RunResult) -> list[str]:
    lines = ["## Phases", ""]
    if not result.phases:
        return [*lines, "No phases were timed.", ""]
    rows = [[name, f"{seconds:.2f}"] for name, seconds in result.phases.items()]
    rows.append(["**whole run**", f"**{result.total_seconds:.2f}**"])
    return lines + _table(["phase", "seconds"], rows, "lr")


def _curves_section(result: RunResult, plots: dict[str, bytes]) -> list[str]:
    lines = ["## Mapping curves", ""]
    scale, scale_note = _scale(result)
    tables: list[MappingTable] = []
    for city in result.cities:
        if not city.table:
            lines.append(f"- {city.city}: no mapping table")
            continue
        try:
            tables.append(MappingTable.from_claims(city.table))
        except MappingError as exc:  # the run's evidence: show it, don't lose the report
            lines.append(f"- {city.city}: the table cannot be read ({exc})")
    if lines[-1] != "":
        lines.append("")
    bands = ", ".join(
        f"{band.name} ≥ {band.lower}" if band.lower > scale.min else band.name
        for band in scale.bands
    )
    lines += [
        f"Alliance scale {scale.min}–{scale.max}{scale_note}: reference normal "
        f"(mean {scale.mean:g}, sd {scale.sd:g}); thresholds "
        f"{', '.join(str(t) for t in scale.thresholds)}; bands {bands}.",
        "",
    ]
    if not tables:
        return [*lines, "No mapping tables to plot.", ""]
    plots[CURVES_PNG] = render_curves(tables, scale)
    return [*lines, f"![Mapping curves]({CURVES_PNG})", ""]


def _thresholds_section(result: RunResult, measured: Sequence[CityThresholds]) -> list[str]:
    scale, _ = _scale(result)
    lines = [
        "## Fairness per threshold",
        "",
        "For each city and each published threshold: the share of the city's residents "
        "whose alliance score (its table applied to their local score) reaches the "
        "threshold, the reference distribution's share, their difference, and the least "
        "error any monotone table could reach there, with the local score point whose "
        "residents no table can split (it straddles the reference's share). From each "
        "city's distribution summary and the table published for it (docs/MAPPINGS.md, "
        "section 13). The goal: within 1 pp of the reference share, or within the least "
        "error where the scale is coarser.",
        "",
        f"**{describe_thresholds(measured)}.**",
        "",
    ]
    rows = []
    for city in measured:
        if city.problem is not None:
            rows.append([city.city, "–", "–", "–", "–", "–", "–", city.problem])
            continue
        for share in city.shares:
            rows.append(
                [
                    city.city,
                    f"≥ {share.threshold}",
                    f"{share.city_share:.1%}",
                    f"{share.reference_share:.1%}",
                    f"{100 * share.error:+.2f} pp",
                    f"{100 * share.least_error:.2f} pp",
                    f"{share.straddling_point} ({share.straddling_share:.1%})",
                    f"{_mark(share.meets_goal)} {share.verdict}",
                ]
            )
    if not rows:
        return [*lines, f"No cities: nothing to measure on {len(scale.thresholds)} thresholds.", ""]
    return lines + _table(
        [
            "city", "threshold", "city share", "reference", "difference", "least error",
            "straddling point (share)", "goal",
        ],
        rows,
        "llrrrrll",
    )  # fmt: skip


def _grant_rates_section(result: RunResult, plots: dict[str, bytes]) -> list[str]:
    gap = fairness_gap(result.visits)
    lines = [
        "## Grant rates by home-city percentile",
        "",
        "Decided visits only (granted or denied; refused and unavailable left out), by the "
        "holder's percentile in her home city in buckets of "
        f"{100 / DEFAULT_BUCKETS:g} points. Locals are the verifying city's residents, "
        "visitors everyone else's. The largest visitor−local difference is the largest "
        "absolute difference between visitors' and locals' grant rates over verifying "
        f"city, scenario and bucket, among cells where both groups have at least "
        f"{DEFAULT_MIN_SAMPLES} decided visits (issue 6's fairness gap: sampling noise and "
        "how each bucket is filled weigh in it, so the run's measure is the one above).",
        "",
        f"**Largest visitor−local difference:** {gap.describe()}"
        + (f"; pooled over verifying cities: {_pooled(result)}" if gap.gap is None else "")
        + ".",
        "",
    ]
    decided = [visit for visit in result.visits if visit.decided]
    if not decided:
        return [*lines, "No decided visits: no grant rates to show.", ""]
    scenarios = _scenarios(result)
    rates = pooled_grant_rates(decided)
    plots[GRANT_RATES_PNG] = _render_grant_rates(rates, scenarios)
    lines += [f"![Grant rates by home-city percentile]({GRANT_RATES_PNG})", ""]

    rows = []
    for scenario in scenarios:
        local, visitor = (_overall(rates, scenario, group) for group in ("local", "visitor"))
        difference = (
            f"{visitor.rate - local.rate:+.3f}" if local.decided and visitor.decided else "–"
        )
        rows.append([scenario, _rate_cell(local), _rate_cell(visitor), difference])
    lines += ["Pooled over verifying cities and percentiles:", ""]
    lines += _table(["scenario", "locals", "visitors", "visitors − locals"], rows, "lrrr")

    cells, skipped = fairness_cells(decided)
    if not cells:
        return [
            *lines,
            f"No cell has {DEFAULT_MIN_SAMPLES} decided visits of both locals and visitors "
            f"({skipped} skipped): no gaps to list.",
            "",
        ]
    rows = [
        [
            cell.city,
            cell.scenario,
            bucket_label(cell.bucket),
            _rate_cell(cell.local),
            _rate_cell(cell.visitor),
            f"{cell.difference:+.3f}",
        ]
        for cell in cells[:_TOP_CELLS]
    ]
    lines += [f"The {len(rows)} cells with the largest gaps, of {len(cells)} compared:", ""]
    return lines + _table(
        ["verifying city", "scenario", "percentile", "locals", "visitors", "visitors − locals"],
        rows,
        "lllrrr",
    )


def _latency_section(result: RunResult, plots: dict[str, bytes]) -> list[str]:
    lines = ["## Latency", ""]
    timed = {name: result.latencies[name] for name in sorted(result.latencies)}
    if not any(timed.values()):
        return [*lines, "No HTTP calls were timed.", ""]
    rows = []
    for name, seconds in timed.items():
        if not seconds:
            rows.append([f"`{name}`", "0", "–", "–", "–", "–"])
            continue
        ms = np.asarray(seconds, dtype=np.float64) * 1000
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        rows.append([f"`{name}`", _n(len(ms)), *(f"{v:.1f}" for v in (p50, p90, p99, ms.max()))])
    lines += _table(["endpoint", "calls", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows, "lrrrrr")
    plots[LATENCY_PNG] = _render_latency({n: s for n, s in timed.items() if s})
    return [*lines, f"![Latency by endpoint]({LATENCY_PNG})", ""]


def _throughput_section(result: RunResult, plots: dict[str, bytes]) -> list[str]:
    lines = [
        "## Throughput",
        "",
        f"{_n(len(result.visits))} visits in {result.visits_seconds:.1f} s of the visits phase: "
        f"**{result.visits_per_second:.1f} visits per second** overall.",
        "",
    ]
    if not result.visits:
        return [*lines, "No visits: no timeline to plot.", ""]
    plots[TIMELINE_PNG] = _render_timeline(result)
    return [*lines, f"![Visits per second over the visits phase]({TIMELINE_PNG})", ""]


def _outcomes_section(result: RunResult) -> list[str]:
    lines = ["## Outcomes", ""]
    if not result.visits:
        return [*lines, "No visits.", ""]
    total = len(result.visits)
    rows = []
    for outcome in _OUTCOMES:
        of = [visit for visit in result.visits if visit.outcome == outcome]
        locals_ = sum(visit.local for visit in of)
        rows.append(
            [outcome, _n(len(of)), f"{len(of) / total:.1%}", _n(locals_), _n(len(of) - locals_)]
        )
    lines += _table(["outcome", "visits", "share", "by locals", "by visitors"], rows, "lrrrr")
    codes = Counter(
        (visit.outcome, visit.code) for visit in result.visits if visit.code is not None
    )
    if not codes:
        return [*lines, "No visit carried a code.", ""]
    common = sorted(codes.items(), key=lambda item: (-item[1], item[0]))[:_TOP_CODES]
    lines += [
        f"The {len(common)} most common codes (a denial's first reason, an error's code):",
        "",
    ]
    rows = [[f"`{code}`", outcome, _n(count)] for (outcome, code), count in common]
    return lines + _table(["code", "outcome", "visits"], rows, "llr")


def _faults_section(result: RunResult) -> list[str]:
    lines = ["## Faults", ""]
    if not result.faults:
        return [*lines, "No faults were injected in this run.", ""]
    rows = [
        [f"{fault.at:.1f}", fault.name, fault.action, fault.observed, _mark(fault.ok)]
        for fault in result.faults
    ]
    lines += _table(["at (s)", "fault", "action", "observed", "ok"], rows, "rlllc")
    for fault in result.faults:
        if fault.details:
            lines += [f"{fault.name}, in detail:", ""]
            lines += [f"- {_cell(detail)}" for detail in fault.details[:20]]
            more = len(fault.details) - 20
            lines += [f"- ... and {more} more", ""] if more > 0 else [""]
    return lines


def _invariants_section(result: RunResult) -> list[str]:
    lines = ["## Invariants", ""]
    if not result.invariants:
        return [*lines, "No invariants were checked in this run.", ""]
    rows = [[inv.name, _mark(inv.ok), inv.detail] for inv in result.invariants]
    return lines + _table(["invariant", "ok", "detail"], rows, "lcl")


# --- text -----------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Cell text that keeps a GitHub table whole: ``|`` escaped, line breaks as <br>."""
    return re.sub(r"\r\n|\r|\n", "<br>", text.strip()).replace("|", r"\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    return [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join(rule[a] for a in align) + "|",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
        "",
    ]


def _n(count: int) -> str:
    return f"{count:,}"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _utc(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _outcome_counts(outcomes: Counter[Outcome]) -> str:
    return ", ".join(f"{_n(outcomes[o])} {o}" for o in _OUTCOMES)


def _overall(rates: dict[PooledRateKey, GrantRate], scenario: str, group: Group) -> GrantRate:
    """A scenario's grant rate for one group over every percentile bucket."""
    found = [rate for key, rate in rates.items() if key[:2] == (scenario, group)]
    return GrantRate(sum(r.granted for r in found), sum(r.decided for r in found))


def _rate_cell(rate: GrantRate) -> str:
    if not rate.decided:
        return "–"
    return f"{rate.rate:.3f} ({_n(rate.granted)}/{_n(rate.decided)})"


def _table_note(claims: Mapping[str, Any]) -> str:
    if not claims:
        return "none"
    return f"v{claims.get('version', '?')}, {claims.get('method', 'equipercentile')}"


def _scale(result: RunResult) -> tuple[AllianceScale, str]:
    if not result.scale:
        return AllianceScale(), " (the default scale: the run recorded none)"
    return AllianceScale.from_json(result.scale), ""


def _scenarios(result: RunResult) -> list[str]:
    """The run's scenarios in its order, then any others the visits name, sorted."""
    named = list(dict.fromkeys(result.scenarios))
    return named + sorted({v.scenario for v in result.visits} - set(named))


# --- plots ----------------------------------------------------------------------------------


@contextmanager
def _fonts() -> Iterator[None]:
    cjk = cjk_font()  # a fault's or an endpoint's text may be Chinese
    families = ["DejaVu Sans", cjk] if cjk else ["DejaVu Sans"]
    with mpl.rc_context({"font.family": families, "font.size": 9}):
        yield


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _tidy(axes: Axes) -> None:
    for spine in ("top", "right"):
        axes.spines[spine].set_visible(False)


def _render_grant_rates(rates: dict[PooledRateKey, GrantRate], scenarios: Sequence[str]) -> bytes:
    columns = min(_PANEL_COLUMNS, len(scenarios))
    rows = math.ceil(len(scenarios) / columns)
    width = 100 / DEFAULT_BUCKETS
    middles = (np.arange(DEFAULT_BUCKETS) + 0.5) * width
    with _fonts():
        figure = Figure(figsize=(4.2 * columns, 2.9 * rows + 0.9), layout="constrained")
        FigureCanvasAgg(figure)
        grid = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
        for index, axes in enumerate(grid.flat):
            if index >= len(scenarios):
                axes.set_visible(False)
                continue
            scenario = scenarios[index]
            plotted = False
            for group, colour in _GROUP_COLOURS:
                found = [
                    rates.get(PooledRateKey(scenario, group, b)) for b in range(DEFAULT_BUCKETS)
                ]
                y = np.array([np.nan if r is None else r.rate for r in found])
                n = np.array([0 if r is None else r.decided for r in found])
                if not n.any():
                    continue
                plotted = True
                axes.plot(middles, y, color=colour, linewidth=1.6, zorder=2)
                solid = n >= DEFAULT_MIN_SAMPLES
                thin = (n > 0) & ~solid
                axes.scatter(middles[solid], y[solid], color=colour, s=22, zorder=3)
                axes.scatter(
                    middles[thin], y[thin], facecolors="white", edgecolors=colour, s=22, zorder=3
                )
            if not plotted:
                axes.text(
                    0.5,
                    0.5,
                    "no decided visits",
                    transform=axes.transAxes,
                    ha="center",
                    va="center",
                    color="0.4",
                )
            axes.set_title(scenario.replace("_", " "), fontsize=9.5, loc="left")
            axes.set_xlim(0, 100)
            axes.set_ylim(-0.03, 1.03)
            axes.set_xticks(np.linspace(0, 100, 6))
            axes.set_yticks(np.linspace(0, 1, 5))
            axes.grid(True, color="0.9", linewidth=0.6, zorder=0)
            _tidy(axes)
        figure.suptitle(
            "Grant rate by home-city percentile: locals vs visitors, pooled over verifying cities",
            x=0.01,
            ha="left",
            fontsize=11.5,
            fontweight="bold",
        )
        figure.supxlabel("holder's percentile in her home city (bucket middle)")
        figure.supylabel("grant rate (granted / decided)")
        handles = [
            Line2D([], [], color=_LOCAL_COLOUR, marker="o", label="locals"),
            Line2D([], [], color=_VISITOR_COLOUR, marker="o", label="visitors"),
            Line2D(
                [],
                [],
                color="0.4",
                marker="o",
                markerfacecolor="white",
                linestyle="none",
                label=f"fewer than {DEFAULT_MIN_SAMPLES} decided visits",
            ),
        ]
        grid.flat[0].legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.9)
        return _png(figure)


def _render_latency(timed: dict[str, list[float]]) -> bytes:
    names = list(timed)
    markers = (("p50", 50, "o"), ("p90", 90, "D"), ("p99", 99, "^"))
    with _fonts():
        figure = Figure(figsize=(9.5, 1.4 + 0.45 * len(names)), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for row, name in enumerate(names):
            ms = np.maximum(np.asarray(timed[name], dtype=np.float64) * 1000, 1e-3)
            y = len(names) - 1 - row  # the first endpoint on top
            axes.hlines(y, ms.min(), ms.max(), color="0.6", linewidth=1.2, zorder=1)
            for index, (_, q, marker) in enumerate(markers):
                axes.scatter(
                    np.percentile(ms, q), y, marker=marker, s=36, color=f"C{index}", zorder=3
                )
            axes.scatter(ms.max(), y, marker="x", s=36, color="black", zorder=3)
        axes.set_yticks(range(len(names)), list(reversed(names)))
        axes.set_ylim(-0.7, len(names) - 0.3)
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.set_xlabel("milliseconds (log scale); grey line: fastest to slowest call")
        axes.set_title("Latency by endpoint", loc="left", fontsize=11.5, fontweight="bold")
        axes.grid(True, axis="x", which="both", color="0.9", linewidth=0.6, zorder=0)
        handles = [
            Line2D([], [], color=f"C{index}", marker=marker, linestyle="none", label=label)
            for index, (label, _, marker) in enumerate(markers)
        ]
        handles.append(Line2D([], [], color="black", marker="x", linestyle="none", label="max"))
        axes.legend(handles=handles, loc="lower right", ncols=4, fontsize=8, framealpha=0.9)
        _tidy(axes)
        return _png(figure)


def _bin_width(duration: float) -> float:
    wanted = duration / _TIMELINE_BINS
    return next((w for w in _BIN_WIDTHS if w >= wanted), _BIN_WIDTHS[-1])


def _render_timeline(result: RunResult) -> bytes:
    latest = max(visit.t for visit in result.visits)
    faults_at = [fault.at for fault in result.faults]
    duration = max(result.visits_seconds, latest, *faults_at, 1e-9)
    width = _bin_width(duration)
    bins = max(1, math.ceil(duration / width))
    with _fonts():
        figure = Figure(figsize=(10.5, 4.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        bottom = np.zeros(bins)
        edges = np.arange(bins) * width
        for outcome in _OUTCOMES:
            counts = np.zeros(bins)
            for visit in result.visits:
                if visit.outcome == outcome:
                    counts[min(max(int(visit.t // width), 0), bins - 1)] += 1
            if not counts.any():
                continue
            axes.bar(
                edges,
                counts / width,
                width=width,
                bottom=bottom,
                align="edge",
                color=_OUTCOME_COLOURS[outcome],
                label=outcome,
                linewidth=0,
            )
            bottom += counts / width
        top = float(bottom.max()) * 1.2 or 1.0  # room for the legend
        above = blended_transform_factory(axes.transData, axes.transAxes)
        for number, fault in enumerate(result.faults, 1):
            colour = "0.25" if fault.ok else "#d62728"
            axes.axvline(fault.at, color=colour, linestyle="--", linewidth=1, zorder=4)
            # A number above the plot (faults a second apart stay legible and hide no bar);
            # the names are listed under the axes.
            axes.text(
                fault.at, 1.01, str(number), transform=above, ha="center", va="bottom",
                fontsize=8, color=colour, fontweight="bold",
            )  # fmt: skip
        axes.set_xlim(0, bins * width)
        axes.set_ylim(0, top)
        label = "seconds since the visits phase began"
        if result.faults:
            names = "   ".join(
                f"{number} {fault.name} {_mark(fault.ok)}"
                for number, fault in enumerate(result.faults, 1)
            )
            label += "\n\n" + textwrap.fill(f"faults: {names}", width=140)
        axes.set_xlabel(label)
        axes.set_ylabel(f"visits per second ({width:g} s bins)")
        figure.suptitle(
            "Visits per second by outcome; dashed lines: injected faults (✗: not as expected)",
            x=0.01,
            ha="left",
            fontsize=11.5,
            fontweight="bold",
        )
        axes.legend(loc="upper left", ncols=4, fontsize=8, framealpha=0.9)
        _tidy(axes)
        return _png(figure)
