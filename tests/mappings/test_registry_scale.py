"""The alliance scale travels as data in the signed registry's ``scale`` claim."""

from __future__ import annotations

import pytest

import protocol as P
from mappings import AllianceScale, Band, MappingError
from tests.conftest import ALLIANCE, NOW, ed_key

ROOT = ed_key(50)


def test_scale_round_trips_through_a_signed_registry() -> None:
    scale = AllianceScale(mean=620.0, sd=90.0, thresholds=(550, 650, 750))
    token = P.sign_registry(
        {
            "iss": ALLIANCE,
            "exp": NOW + 86400,
            "version": 1,
            "prev": None,
            "members": [],
            "scale": scale.to_json(),
        },
        root_key=ROOT,
        now=NOW,
    )
    registry = P.verify_registry(token, root_key=ROOT.public_key(), now=NOW)
    read = AllianceScale.from_json(dict(registry.scale))
    assert read == scale
    assert read.sha256 == scale.sha256
    assert read.reference.sum() == pytest.approx(1.0)


def test_default_scale_is_the_design_default() -> None:
    scale = AllianceScale()
    assert (scale.min, scale.max) == (0, 1000)
    assert [b.lower for b in scale.bands] == [0, 550, 600, 700, 750]
    assert scale.thresholds == (550, 600, 650, 700, 750)
    assert [scale.band_of(s) for s in (549, 550, 599, 600, 699, 700, 749, 750, 1000)] == [
        "poor", "fair", "fair", "good", "good", "very_good", "very_good", "excellent", "excellent",
    ]  # fmt: skip
    # The reference is a discretised normal(600, 100): its median is 600 and ~84 % lies below 700.
    cumulative = scale.reference.cumsum()
    assert int((cumulative < 0.5).sum()) == 600
    assert cumulative[699] == pytest.approx(0.8413, abs=0.002)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bands": (Band("poor", 10),)}, "scale.bands"),
        ({"bands": (Band("poor", 0), Band("good", 600), Band("fair", 550))}, "scale.bands"),
        ({"thresholds": (600, 550)}, "scale.thresholds"),
        ({"thresholds": (1001,)}, "scale.thresholds"),
        ({"sd": 0.0}, "scale.reference.sd"),
        ({"reference_kind": "uniform"}, "scale.reference.kind"),
    ],
)
def test_bad_scales_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(MappingError) as caught:
        AllianceScale(**changes)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_scale_claim_without_bands_names_the_field() -> None:
    data = AllianceScale().to_json()
    del data["bands"]
    with pytest.raises(MappingError) as caught:
        AllianceScale.from_json(data)
    assert caught.value.field == "scale.bands"
