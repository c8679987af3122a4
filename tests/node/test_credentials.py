"""Which records feed which credential (issue 18, node/credentials.py): the model file's
[credentials.domestic_service] table, the claims it gives, and kinds that feed the
credential only (scored = false) leaving the score as it was."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

import numpy as np
import pytest

from node.credentials import CredentialRecord, domestic_claims, parse_credential_rules
from node.scoring import DAY, ModelError, RecordInput, ScoringModel, load_model
from node.services.scoring import record_arrays
from tests.conftest import NOW

DEMO = tomllib.loads(resources.files("node").joinpath("scoring_demo.toml").read_text("utf-8"))
MODEL = load_model()
RULES = parse_credential_rules(DEMO, MODEL)


def claims(*records: tuple[str, int, float | None]) -> dict[str, Any] | None:
    assert RULES is not None
    return domestic_claims(
        RULES, [CredentialRecord(k, NOW - days * DAY, p) for k, days, p in records], now=NOW
    )


def test_the_demo_model_names_its_kinds() -> None:
    assert RULES is not None
    assert RULES.kinds["service_rating"] == {"service_rating"}
    assert RULES.rating_thresholds == (3, 4, 5)


def test_no_domestic_record_means_no_credential() -> None:
    assert claims(("volunteering", 10, None)) is None


def test_the_latest_check_decides() -> None:
    passed_then_failed = claims(("background_check_passed", 300, None),
                                ("background_check_failed", 10, None))  # fmt: skip
    assert passed_then_failed is not None
    assert passed_then_failed["background_check_passed"] is False
    assert "background_check_date" not in passed_then_failed
    failed_then_passed = claims(("background_check_failed", 300, None),
                                ("background_check_passed", 10, None))  # fmt: skip
    assert failed_then_passed is not None
    assert failed_then_passed["background_check_passed"]


def test_an_old_check_no_longer_counts() -> None:
    old = claims(("background_check_passed", 1096, None))
    assert old is not None
    assert old["background_check_passed"] is False


def test_ratings_need_enough_of_them_and_stars_in_range() -> None:
    few = claims(("service_rating", 5, 5.0), ("service_rating", 6, 5.0))
    assert few is not None
    assert few["rating"] is None
    assert few["rating_count"] == 2
    out_of_range = claims(
        *[("service_rating", d, 5.0) for d in (1, 2, 3)], ("service_rating", 4, 50.0)
    )
    assert out_of_range is not None
    assert out_of_range["rating"] == 5.0
    assert out_of_range["rating_count"] == 3


def test_an_upheld_complaint_counts_for_twelve_months() -> None:
    recent = claims(("complaint_upheld", 364, None))
    older = claims(("complaint_upheld", 366, None))
    assert recent is not None
    assert recent["no_upheld_complaints_12m"] is False
    assert older is not None
    assert older["no_upheld_complaints_12m"] is True


def test_records_after_now_do_not_count() -> None:
    later = claims(("complaint_upheld", -1, None), ("training_certificate", 10, None))
    assert later is not None
    assert later["no_upheld_complaints_12m"] is True


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"service_rating": ["no_such_kind"]}, "not a record kind"),
        ({"service_rating": ["repair_completed"]}, "repair kind"),
        ({"service_rating": ["service_rating"], "rating_thresholds": [6]}, "whole stars"),
        ({"service_rating": ["service_rating"], "colour": "red"}, "unknown key"),
        ({}, "names no record kind"),
    ],
)
def test_a_bad_table_is_refused_naming_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        parse_credential_rules({**DEMO, "credentials": {"domestic_service": table}}, MODEL)


def test_an_unknown_credential_type_is_refused() -> None:
    with pytest.raises(ModelError, match=r"credentials\.pet_sitting"):
        parse_credential_rules({**DEMO, "credentials": {"pet_sitting": {}}}, MODEL)


def test_a_model_without_the_table_issues_the_credit_standing_alone() -> None:
    without = {k: v for k, v in DEMO.items() if k != "credentials"}
    assert parse_credential_rules(without, ScoringModel.from_dict(without)) is None


def test_kinds_that_feed_the_credential_only_leave_the_score_as_it_was() -> None:
    base = [RecordInput("a/1", "volunteering", NOW - DAY)]
    domestic = [RecordInput("d/1", "service_rating", NOW - DAY, 5.0),
                RecordInput("d/2", "complaint_upheld", NOW - DAY)]  # fmt: skip
    assert MODEL.score(base + domestic, NOW).score == MODEL.score(base, NOW).score
    # the monthly batch agrees: a rating's own points are not its points there either
    kinds = [MODEL.kind_order.index(r.kind) for r in base + domestic]
    arrays = record_arrays(
        MODEL, np.zeros(3, dtype=np.int64), np.array(kinds, dtype=np.int64),
        np.full(3, NOW - DAY, dtype=np.int64), np.array([np.nan, 5.0, np.nan]),
    )  # fmt: skip
    assert arrays.points.tolist()[1:] == [0.0, 0.0]
