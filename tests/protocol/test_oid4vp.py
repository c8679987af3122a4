"""OpenID4VP 1.0 in the protocol library (protocol/_oid4vp.py): the DCQL query of a
scenario and what a wallet discloses for it, the signed request object and each check a
wallet makes of it. Sections are OpenID4VP 1.0's."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import protocol as P
from protocol._json import b64url_decode, b64url_encode
from protocol._jws import sign_jws
from tests.conftest import NOW, ec_key, ed_key

DAY = 86400
HOLDS = {"band": "good", "alliance_score": 633, "score_at_least.600": True,
         "score_at_least.650": False, "score_at_least.700": False}  # fmt: skip


# --- DCQL ----------------------------------------------------------------------------------------


def test_one_tier_asks_for_its_claim_alone() -> None:
    query = P.tiered_dcql_query(["score_at_least.650"])
    [wanted] = query["credentials"]
    assert wanted["meta"] == {"vct_values": [P.VCT]}  # B.3.5
    assert wanted["claims"] == [{"path": ["score_at_least", "650"]}]
    assert "claim_sets" not in wanted
    assert P.choose_disclosures(query, HOLDS) == ("score_at_least.650",)  # false, and shown


@pytest.mark.parametrize(
    ("holds", "shown"),
    [
        ({**HOLDS, "score_at_least.650": True, "score_at_least.700": True}, "score_at_least.700"),
        ({**HOLDS, "score_at_least.650": True}, "score_at_least.650"),
        (HOLDS, "score_at_least.600"),
        ({**HOLDS, "score_at_least.600": False}, "score_at_least.600"),  # the lowest, false
    ],
    ids=["top", "middle", "lowest", "none_reached"],
)
def test_tiers_disclose_one_boolean_the_highest_reached(holds: dict[str, Any], shown: str) -> None:
    query = P.tiered_dcql_query(["score_at_least.600", "score_at_least.650", "score_at_least.700"])
    wanted = query["credentials"][0]
    assert wanted["claim_sets"] == [["tier2"], ["tier1"], ["tier0"]]  # 6.4.2: preference order
    assert [c.get("values") for c in wanted["claims"]] == [None, [True], [True]]  # 6.3
    assert P.choose_disclosures(query, holds) == (shown,)


def test_a_scenario_that_must_see_the_band_gets_it_in_every_set() -> None:
    query = P.tiered_dcql_query(["score_at_least.600", "score_at_least.650"], ["band"])
    assert P.choose_disclosures(query, HOLDS) == ("score_at_least.600", "band")


def test_a_credential_that_lacks_a_claim_cannot_answer() -> None:
    with pytest.raises(P.InvalidClaim):
        P.choose_disclosures(P.dcql_query([["local_score"]]), HOLDS)


def test_a_value_must_match_in_type_too() -> None:
    # DCQL values compare as JSON values: 1 is not true
    query = P.tiered_dcql_query(["score_at_least.600", "score_at_least.650"])
    assert P.choose_disclosures(query, {"score_at_least.600": True, "score_at_least.650": 1}) == (
        "score_at_least.600",
    )


@pytest.mark.parametrize(
    "query",
    [
        None,
        {"credentials": []},
        {"credentials": [{"id": "x", "format": "mso_mdoc", "meta": {}, "claims": []}]},
        {"credentials": [{"id": "x", "format": "dc+sd-jwt", "meta": {"vct_values": ["urn:x"]},
                          "claims": [{"path": ["band"]}]}]},
        P.dcql_query([]),  # no claims: nothing is disclosed blindly
        P.dcql_query([["score_at_least", "650", "x"]]),
        {**P.tiered_dcql_query(["score_at_least.600", "score_at_least.650"]),
         "credentials": [{**P.tiered_dcql_query(["score_at_least.600", "score_at_least.650"])
                          ["credentials"][0], "claim_sets": [["nope"]]}]},
    ],
    ids=["none", "empty", "mdoc", "other_vct", "no_claims", "deep_path", "unknown_set_id"],
)  # fmt: skip
def test_a_query_for_something_else_is_refused(query: Any) -> None:
    with pytest.raises(P.InvalidClaim):
        P.disclosures_for_query(query)


# --- the request object ---------------------------------------------------------------------------


class Verifier:
    def __init__(self, key: P.PrivateKey | None = None) -> None:
        self.ca_key, self.key = ec_key(150), key or ec_key(151)
        self.ca = P.ca_certificate(self.ca_key, name="CA", not_before=NOW - DAY,
                                   not_after=NOW + DAY, serial=1)  # fmt: skip
        self.leaf = P.leaf_certificate(self.ca_key, self.ca, self.key.public_key(),
                                       uri="https://fuzhou.ccx.example", name="fz",
                                       not_before=NOW - DAY, not_after=NOW + DAY, serial=2)  # fmt: skip
        self.client_id = P.client_id_for(self.leaf)

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims = {
            "aud": P.SELF_ISSUED_AUDIENCE, "client_id": self.client_id,
            "response_type": "vp_token", "response_mode": "direct_post.jwt",
            "response_uri": "https://fuzhou.ccx.example/oid4vp/responses/t", "nonce": "n",
            "state": "s", "dcql_query": P.tiered_dcql_query(["score_at_least.650"]),
            "iat": NOW, "exp": NOW + 120, **changes,
        }  # fmt: skip
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, **changes: Any) -> str:
        return P.sign_request_object(self.claims(**changes), self.key, [self.leaf])

    def verify(self, token: str, **options: Any) -> P.VerifiedRequest:
        args = {"client_id": self.client_id, "anchors": [self.ca], "now": NOW, **options}
        return P.verify_request_object(token, **args)


@pytest.mark.parametrize("key", [ec_key(152), ed_key(152)], ids=["ES256", "EdDSA"])
def test_a_signed_request_is_checked_and_says_who_asks(key: P.PrivateKey) -> None:
    verifier = Verifier(key)
    verified = verifier.verify(verifier.sign())
    header = json.loads(b64url_decode(verifier.sign().split(".")[0]))
    assert header["typ"] == "oauth-authz-req+jwt"
    assert base64.b64decode(header["x5c"][0]) == verifier.leaf  # RFC 7515 4.1.6: base64
    assert verified.verifier.uris == ("https://fuzhou.ccx.example",)
    assert verified.requested == ("score_at_least.650",)
    assert verified.query_id == P.CREDENTIAL_QUERY_ID


def _resign(token: str, verifier: Verifier, **header: Any) -> str:
    head = json.loads(b64url_decode(token.split(".")[0]))
    head.update(header)
    head = {k: v for k, v in head.items() if v is not None}
    return sign_jws(head, b64url_decode(token.split(".")[1]), verifier.key)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda v: _resign(v.sign(), v, typ="JWT"), P.WrongTyp),
        (lambda v: _resign(v.sign(), v, x5c=None), P.MissingClaim),
        (lambda v: _resign(v.sign(), v, jwk=P.public_jwk(v.key)), P.ForbiddenHeader),
        (lambda v: _resign(v.sign(), v, crit=["x"]), P.UnsupportedCritical),
        (lambda v: v.sign(client_id="x509_hash:" + "A" * 43), P.ClientIdMismatch),
        (lambda v: v.sign(exp=NOW - 60), P.TokenExpired),
        (lambda v: v.sign(iat=NOW + 600), P.IssuedInFuture),
        (lambda v: v.sign(response_type="code"), P.InvalidClaim),
        (lambda v: v.sign(response_mode="fragment"), P.InvalidClaim),
        (lambda v: v.sign(nonce=None), P.MissingClaim),
        (lambda v: v.sign(transaction_data=["e30"]), P.InvalidClaim),  # 5.1: MUST refuse
        (lambda v: v.sign(dcql_query=None), P.InvalidClaim),
        (lambda v: ".".join([*v.sign().split(".")[:2], b64url_encode(b"\0" * 64)]),
         P.InvalidSignature),
    ],
    ids=["typ", "no_x5c", "jwk", "crit", "client_id_in_object", "expired", "future", "response_type",
         "response_mode", "no_nonce", "transaction_data", "no_dcql", "signature"],
)  # fmt: skip
def test_a_request_that_breaks_a_rule_is_refused(mutate: Any, error: type[Exception]) -> None:
    verifier = Verifier()
    with pytest.raises(error):
        verifier.verify(mutate(verifier))


def test_a_link_whose_client_id_is_another_leafs_is_refused() -> None:
    verifier, other = Verifier(), Verifier(ec_key(153))
    with pytest.raises(P.ClientIdMismatch):
        verifier.verify(verifier.sign(client_id=other.client_id), client_id=other.client_id)


def test_only_x509_hash_client_ids_are_accepted() -> None:
    verifier = Verifier()
    with pytest.raises(P.ClientIdMismatch):
        verifier.verify(verifier.sign(), client_id="redirect_uri:https://evil.example")


def test_a_request_signed_under_an_untrusted_ca_is_refused() -> None:
    verifier = Verifier()
    stranger = P.ca_certificate(ec_key(155), name="x", not_before=NOW - DAY,
                                not_after=NOW + DAY, serial=9)  # fmt: skip
    with pytest.raises(P.CertificateUntrusted):
        verifier.verify(verifier.sign(), anchors=[stranger])


def test_a_request_signed_by_another_key_than_the_leafs_is_refused() -> None:
    verifier = Verifier()
    forged = P.sign_request_object(verifier.claims(), ec_key(156), [verifier.leaf])
    with pytest.raises(P.InvalidSignature):
        verifier.verify(forged)
