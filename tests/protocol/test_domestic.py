"""The domestic-service attestation (issue 18): each claim disclosable on its own, bound
and verified like the credit standing, and separate from it: a verifier of one type
refuses the other. Tokens are decoded with the standard library, not protocol's parsers.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import protocol as P
from tests.conftest import (
    ALLIANCE,
    ISSUER,
    NOW,
    STATUS_URI,
    VERIFIER,
    counter_salt,
    ec_key,
    make_setup,
)

PATHS = (
    "background_check_passed",
    "background_check_date",
    "certified_since",
    "training_certificates",
    "rating_count",
    "no_upheld_complaints_12m",
    "rating_at_least.3",
    "rating_at_least.4",
    "rating_at_least.5",
)


def claims(**overrides: Any) -> P.DomesticServiceClaims:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "exp": NOW + 30 * 86400,
        "alliance": ALLIANCE,
        "status": {"idx": 42, "uri": STATUS_URI},
        "background_check_passed": True,
        "background_check_date": "2026-10-01",
        "certified_since": "2025-03-14",
        "training_certificates": 2,
        "rating_thresholds": [3, 4, 5],
        "rating": 4.4,
        "rating_count": 12,
        "no_upheld_complaints_12m": True,
    }
    base.update(overrides)
    return base  # type: ignore[return-value]


ISSUER_KEY, HOLDER_KEY = ec_key(1), ec_key(2)
KID = P.jwk_thumbprint(P.public_jwk(ISSUER_KEY))


def resolve(iss: str, kid: str | None, alg: str) -> P.PublicKey:
    if iss != ISSUER or kid != KID:
        raise P.UnknownKid("unknown")
    return ISSUER_KEY.public_key()


def issue(**overrides: Any) -> str:
    return P.issue_domestic_attestation(
        claims(**overrides), issuer_key=ISSUER_KEY, kid=KID,
        holder_jwk=P.public_jwk(HOLDER_KEY), now=NOW, salt=counter_salt(),
    )  # fmt: skip


def present(token: str, disclose: tuple[str, ...]) -> str:
    return P.present(token, disclose=disclose, holder_key=HOLDER_KEY, aud=VERIFIER,
                     nonce="n-1", now=NOW + 10)  # fmt: skip


def verify(presentation: str) -> P.VerifiedDomesticPresentation:
    return P.verify_domestic_presentation(
        presentation, resolve_issuer_key=resolve, aud=VERIFIER, nonce="n-1", now=NOW + 11
    )


def payload_of(token: str) -> dict[str, Any]:
    segment = token.split("~")[0].split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def test_only_the_references_are_visible() -> None:
    payload = payload_of(issue())
    assert payload["vct"] == P.DOMESTIC_VCT == "urn:ccx:domestic-service:1"
    assert set(payload) == {"iss", "iat", "nbf", "exp", "vct", "cnf", "status", "alliance",
                            "rating_at_least", "_sd", "_sd_alg"}  # fmt: skip
    assert set(payload["rating_at_least"]) == {"_sd"}  # every threshold hidden


@pytest.mark.parametrize("path", PATHS)
def test_each_claim_is_disclosed_alone(path: str) -> None:
    verified = verify(present(issue(), (path,)))
    head = path.split(".")[0]
    assert list(verified.disclosed) == [head]
    if head == "rating_at_least":
        assert list(verified.disclosed[head]) == [path.split(".")[1]]
    assert verified.claim(path) is not None


def test_rating_thresholds_follow_the_average() -> None:
    token = issue(rating=4.4)
    values = {t: verify(present(token, (f"rating_at_least.{t}",))).claim(f"rating_at_least.{t}")
              for t in (3, 4, 5)}  # fmt: skip
    assert values == {3: True, 4: True, 5: False}
    unrated = issue(rating=None, rating_count=1)
    assert verify(present(unrated, ("rating_at_least.3",))).claim("rating_at_least.3") is False


def test_a_never_checked_housekeeper_has_no_check_date() -> None:
    token = P.issue_domestic_attestation(
        {k: v for k, v in claims(background_check_passed=False).items()  # type: ignore[misc]
         if k not in ("background_check_date", "certified_since")},
        issuer_key=ISSUER_KEY, kid=KID, holder_jwk=P.public_jwk(HOLDER_KEY), now=NOW,
    )  # fmt: skip
    with pytest.raises(P.DisclosureNotFound):
        present(token, ("background_check_date",))
    assert (
        verify(present(token, ("background_check_passed",))).claim("background_check_passed")
        is False
    )


def test_a_credit_verifier_refuses_a_domestic_credential() -> None:
    presentation = present(issue(), ("background_check_passed",))
    with pytest.raises(P.ProtocolError) as caught:  # it lacks the credit standing's mapping
        P.verify_presentation(presentation, resolve_issuer_key=resolve, aud=VERIFIER,
                              nonce="n-1", now=NOW + 11)  # fmt: skip
    assert caught.value.code in ("missing_claim", "invalid_claim")


def test_a_domestic_verifier_refuses_a_credit_standing() -> None:
    setup = make_setup()
    presentation = setup.present(("score_at_least.650",), nonce="n-1")
    with pytest.raises(P.InvalidClaim, match="vct"):
        P.verify_domestic_presentation(presentation, resolve_issuer_key=setup.resolve,
                                       aud=VERIFIER, nonce="n-1", now=NOW + 11)  # fmt: skip


def test_recipients_are_checked() -> None:
    token = issue(aud=["https://other.ccx.example"])
    presentation = P.present(token, disclose=("background_check_passed",), holder_key=HOLDER_KEY,
                             aud=VERIFIER, nonce="n-1", now=NOW + 10)  # fmt: skip
    with pytest.raises(P.RecipientNotNamed):
        verify(presentation)


def test_a_presentation_signed_by_another_holder_key_is_refused() -> None:
    token = issue()
    forged = P.present(token, disclose=("background_check_passed",), holder_key=ec_key(9),
                       aud=VERIFIER, nonce="n-1", now=NOW + 10)  # fmt: skip
    with pytest.raises(P.ProtocolError) as caught:
        verify(forged)
    assert caught.value.code == "kb_invalid_signature"


@pytest.mark.parametrize(
    "overrides",
    [{"rating_thresholds": []}, {"certified_since": "14 March"}, {"exp": NOW + 40 * 86400}],
)
def test_claims_a_node_should_never_make_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"lifetime|thresholds|ISO date"):
        issue(**overrides)


QUERY = P.required_claims_query(
    P.DOMESTIC_VCT,
    [("background_check_passed",), ("background_check_passed", "rating_at_least.4")],
    ("certified_since",),
)


def test_the_query_asks_for_the_domestic_vct_and_the_highest_tier_first() -> None:
    assert P.requested_vct(QUERY) == P.DOMESTIC_VCT
    available = {"background_check_passed": True, "rating_at_least.4": True,
                 "certified_since": "2025-03-14"}  # fmt: skip
    assert P.choose_disclosures(QUERY, available) == (
        "background_check_passed", "rating_at_least.4", "certified_since",
    )  # fmt: skip


def test_a_shown_claim_she_lacks_does_not_stop_her_answering() -> None:
    available = {"background_check_passed": True, "rating_at_least.4": False}
    # rating 4 is false: the lowest tier's set, without the certificate she does not have
    assert P.choose_disclosures(QUERY, available) == ("background_check_passed",)


def test_a_credit_query_is_not_a_domestic_one() -> None:
    assert P.requested_vct(P.tiered_dcql_query(["score_at_least.650"])) == P.VCT


def test_a_query_for_a_type_not_ours_is_refused_when_made() -> None:
    with pytest.raises(ValueError, match="not a credential type of ours"):
        P.dcql_query([["band"]], vct="urn:example:other:1")
