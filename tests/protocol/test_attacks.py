"""The attack suite: one named test per attack on a credit-standing presentation.

Each test builds a hostile presentation by hand (standard-library JSON and base64, and
the signing primitives of ``cryptography``, not ``protocol``'s own encoders) that is
valid in every respect but one, then asserts the exact error class and its stable
``code``. Where the fault sits in the issuer JWT, the issuer JWT is re-signed and the
KB-JWT rebuilt over the new ``<issuer-jwt>~<disclosures>~``, so nothing else fails
first; ``test_control_*`` shows that the forging helpers alone yield a valid
presentation.

The cases after the ones the issue lists (deep nesting, non-finite NumericDates, lone
surrogates, small-order Ed25519 keys, malformed ``_sd`` at the holder) were found while
writing this suite and fixed in protocol/.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import protocol as P
from protocol._jws import sign_jws
from tests.conftest import (
    NOW,
    STATUS_URI,
    VERIFIER,
    Setup,
    counter_salt,
    ec_key,
    ed_key,
    make_setup,
    standard_claims,
)

NONCE = "nonce-1"
KB_IAT = NOW + 10
VERIFY_AT = NOW + 11  # Setup.verify's default clock
TYP = "dc+sd-jwt"
ATTACKER_ISS = "https://evil.example"
OTHER_VERIFIER = "https://quanzhou.ccx.example"
DROP = object()  # marks a header member or claim to leave out

# --- encoding by hand ----------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def to_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def digest_of(disclosure: str) -> str:
    return b64(hashlib.sha256(disclosure.encode("ascii")).digest())


def sd_hash_of(prefix: str) -> str:
    return b64(hashlib.sha256(prefix.encode("ascii")).digest())


def alg_of(key: Any) -> str:
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA"


def key_like(setup: Setup, seed: int) -> Any:
    """Another private key of the same type as the issuer's."""
    return ec_key(seed) if alg_of(setup.issuer_key) == "ES256" else ed_key(seed)


def key_unlike(setup: Setup, seed: int) -> Any:
    """A private key of the other supported type."""
    return ed_key(seed) if alg_of(setup.issuer_key) == "ES256" else ec_key(seed)


def raw_signature(key: Any, signing_input: bytes) -> bytes:
    """The JWS signature bytes: r || s for ES256 (RFC 7518 section 3.4), raw for EdDSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(signing_input)  # type: ignore[no-any-return]


def signing_input(header: Any, payload: Any) -> str:
    """``b64(header).b64(payload)``; dicts are serialised, bytes used verbatim."""
    h = header if isinstance(header, bytes) else to_json(header)
    p = payload if isinstance(payload, bytes) else to_json(payload)
    return f"{b64(h)}.{b64(p)}"


def compact(header: Any, payload: Any, key: Any = None, *, signature: bytes | None = None) -> str:
    """A compact JWS signed with ``key`` whatever its header says (or with ``signature``)."""
    text = signing_input(header, payload)
    if signature is None:
        signature = raw_signature(key, text.encode("ascii"))
    return f"{text}.{b64(signature)}"


def without_dropped(members: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in members.items() if value is not DROP}


# --- the standard attestation, taken apart ------------------------------------------


@dataclass
class Issued:
    """A fresh, mutable decoding of a setup's attestation."""

    header: dict[str, Any]
    payload: dict[str, Any]
    disclosures: dict[str, str]  # path ("band", "score_at_least.650") -> disclosure text


def issued(setup: Setup) -> Issued:
    jwt, *texts, _ = setup.attestation.split("~")
    header, payload, _ = jwt.split(".")
    claims = unb64json(payload)
    nested = set(claims["score_at_least"]["_sd"])
    by_path = {}
    for text in texts:
        name = unb64json(text)[1]
        by_path[f"score_at_least.{name}" if digest_of(text) in nested else name] = text
    return Issued(unb64json(header), claims, by_path)


def issuer_header(setup: Setup, **changes: Any) -> dict[str, Any]:
    header = {"alg": alg_of(setup.issuer_key), "typ": TYP, "kid": setup.kid}
    return without_dropped({**header, **changes})


def new_disclosure(name: str | None, value: Any, *, salt: str | None = None) -> str:
    """A well-formed disclosure (RFC 9901 section 4.2.1) with a 128-bit salt."""
    salt = salt or b64(hashlib.sha256(repr((name, value)).encode()).digest()[:16])
    return b64(to_json([salt, value] if name is None else [salt, name, value]))


def reference(obj: dict[str, Any], *disclosures: str) -> None:
    """Have the issuer sign these disclosures' digests into ``obj``'s ``_sd`` array."""
    obj["_sd"] = sorted([*obj.get("_sd", []), *map(digest_of, disclosures)])


def bind(
    issuer_jwt: str,
    disclosures: list[str],
    holder_key: Any,
    *,
    kb_header: Any = None,
    kb_payload: Any = None,
    kb_signature: bytes | None = None,
    **claims: Any,
) -> str:
    """``<issuer-jwt>~<disclosures>~<kb-jwt>`` with a KB-JWT over exactly that prefix.

    ``claims`` override the KB-JWT claims (``DROP`` removes one); ``kb_payload`` (bytes, or
    a function of the correct sd_hash returning bytes) replaces the payload outright.
    """
    prefix = "~".join([issuer_jwt, *disclosures, ""])
    if callable(kb_payload):
        kb_payload = kb_payload(sd_hash_of(prefix))
    elif kb_payload is None:
        defaults = {"iat": KB_IAT, "aud": VERIFIER, "nonce": NONCE, "sd_hash": sd_hash_of(prefix)}
        kb_payload = without_dropped({**defaults, **claims})
    if kb_header is None:
        kb_header = {"alg": alg_of(holder_key), "typ": "kb+jwt"}
    return prefix + compact(kb_header, kb_payload, holder_key, signature=kb_signature)


def forge(
    setup: Setup,
    *,
    header: Any = None,
    payload: Any = None,
    key: Any = None,
    signature: bytes | None = None,
    disclosures: list[str] | None = None,
    holder_key: Any = None,
    **kb: Any,
) -> str:
    """A presentation around a hand-signed issuer JWT; valid unless the caller changed it.

    Defaults: the standard header, payload and issuer key, disclosing score_at_least.650,
    with a correct KB-JWT by the holder for ``VERIFIER``, ``NONCE`` and ``KB_IAT``.
    """
    base = issued(setup)
    issuer_jwt = compact(
        issuer_header(setup) if header is None else header,
        base.payload if payload is None else payload,
        setup.issuer_key if key is None else key,
        signature=signature,
    )
    if disclosures is None:
        disclosures = [base.disclosures["score_at_least.650"]]
    return bind(issuer_jwt, disclosures, holder_key or setup.holder_key, **kb)


def split(presentation: str) -> tuple[str, list[str], str]:
    issuer_jwt, *disclosures, kb_jwt = presentation.split("~")
    return issuer_jwt, disclosures, kb_jwt


class RecordingResolver:
    """The setup's resolver, recording every look-up."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.calls: list[tuple[str, Any, str]] = []

    def __call__(self, iss: str, kid: str | None, alg: str) -> P.PublicKey:
        self.calls.append((iss, kid, alg))
        return self.setup.resolve(iss, kid, alg)


def verify(
    setup: Setup,
    presentation: str,
    *,
    resolver: Callable[[str, Any, str], Any] | None = None,
    now: int = VERIFY_AT,
    **options: Any,
) -> P.VerifiedPresentation:
    return P.verify_presentation(
        presentation,
        resolve_issuer_key=resolver or setup.resolve,
        aud=VERIFIER,
        nonce=NONCE,
        now=now,
        **options,
    )


@contextmanager
def refused(error: type[P.ProtocolError], code: str) -> Iterator[pytest.ExceptionInfo[Any]]:
    """Expect exactly ``error`` (not a subclass) carrying the stable ``code``."""
    with pytest.raises(error) as info:
        yield info
    assert type(info.value) is error, f"{type(info.value).__name__} is not {error.__name__}"
    assert info.value.code == code


def issue(
    setup: Setup, *, now: int = NOW, salt: P.SaltSource | None = None, **overrides: Any
) -> Setup:
    """A new attestation by the same issuer for the same holder (a legitimate issuance)."""
    attestation = P.issue_attestation(
        standard_claims(**overrides),
        issuer_key=setup.issuer_key,
        kid=setup.kid,
        holder_jwk=P.public_jwk(setup.holder_key),
        now=now,
        salt=salt or counter_salt(),
    )
    return Setup(setup.issuer_key, setup.holder_key, setup.kid, attestation)


# --- controls: the forging helpers alone produce valid presentations ---------------


def test_control_hand_forged_presentation_verifies(setup: Setup) -> None:
    verified = verify(setup, forge(setup))

    assert dict(verified.disclosed) == {"score_at_least": {"650": True}}


def test_control_hand_signer_agrees_with_the_library_signer(setup: Setup) -> None:
    payload = to_json(issued(setup).payload)
    by_library = sign_jws({"typ": TYP, "kid": setup.kid}, payload, setup.issuer_key)
    by_hand = compact(issuer_header(setup), payload, setup.issuer_key)

    assert by_hand.rsplit(".", 1)[0] == by_library.rsplit(".", 1)[0]
    if alg_of(setup.issuer_key) == "EdDSA":  # deterministic signatures (RFC 8032)
        assert by_hand == by_library
    for issuer_jwt in (by_library, by_hand):
        verify(setup, bind(issuer_jwt, [issued(setup).disclosures["band"]], setup.holder_key))


def test_control_issuer_signed_extra_disclosure_verifies(setup: Setup) -> None:
    base = issued(setup)
    extra = new_disclosure("nickname", "egret")
    reference(base.payload, extra)

    verified = verify(setup, forge(setup, payload=base.payload, disclosures=[extra]))

    assert dict(verified.disclosed) == {}  # not a credit claim, so not reported


# --- alg ------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused_in_any_letter_case(setup: Setup, alg: str) -> None:
    resolver = RecordingResolver(setup)
    presentation = forge(setup, header=issuer_header(setup, alg=alg), signature=b"")

    with refused(P.AlgorithmNotAllowed, "alg_not_allowed"):
        verify(setup, presentation, resolver=resolver)
    assert resolver.calls == []


@pytest.mark.parametrize("alg", ["none", "NONE"])
def test_alg_none_is_refused_even_when_the_caller_allows_it(setup: Setup, alg: str) -> None:
    presentation = forge(setup, header=issuer_header(setup, alg=alg), signature=b"")

    with refused(P.AlgorithmNotAllowed, "alg_not_allowed"):
        verify(setup, presentation, allowed_algs=(alg, "ES256", "EdDSA"))


def test_kb_jwt_alg_none_is_refused(setup: Setup) -> None:
    presentation = forge(setup, kb_header={"alg": "none", "typ": "kb+jwt"}, kb_signature=b"")

    with refused(P.AlgorithmNotAllowed, "alg_not_allowed"):
        verify(setup, presentation)


def _public_key_as_hmac_secret(setup: Setup, material: str) -> bytes:
    public = setup.issuer_key.public_key()
    jwk = P.public_jwk(public)
    return {
        "pem": public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-compact": to_json(jwk),
        "jwk-sorted": json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode(),
    }[material]


@pytest.mark.parametrize("material", ["pem", "jwk-json", "jwk-compact", "jwk-sorted"])
@pytest.mark.parametrize("allowed", [None, ("HS256", "ES256", "EdDSA")], ids=["default", "hs256"])
def test_hs256_keyed_with_the_issuers_public_key_is_refused(
    setup: Setup, material: str, allowed: tuple[str, ...] | None
) -> None:
    header = issuer_header(setup, alg="HS256")
    text = signing_input(header, issued(setup).payload)
    secret = _public_key_as_hmac_secret(setup, material)
    mac = hmac.new(secret, text.encode("ascii"), hashlib.sha256).digest()
    presentation = bind(f"{text}.{b64(mac)}", [issued(setup).disclosures["band"]], setup.holder_key)
    resolver = RecordingResolver(setup)
    options = {} if allowed is None else {"allowed_algs": allowed}

    with refused(P.AlgorithmNotAllowed, "alg_not_allowed"):
        verify(setup, presentation, resolver=resolver, **options)
    assert resolver.calls == []


def test_eddsa_header_over_a_p256_issuer_key_is_refused() -> None:
    setup = make_setup("ES256")
    attacker = ed_key(66)
    presentation = forge(setup, header=issuer_header(setup, alg="EdDSA"), key=attacker)

    with refused(P.AlgorithmKeyMismatch, "alg_key_mismatch"):
        verify(setup, presentation)


def test_es256_header_over_an_ed25519_issuer_key_is_refused() -> None:
    setup = make_setup("EdDSA")
    attacker = ec_key(66)
    presentation = forge(setup, header=issuer_header(setup, alg="ES256"), key=attacker)

    with refused(P.AlgorithmKeyMismatch, "alg_key_mismatch"):
        verify(setup, presentation)


@pytest.mark.parametrize(("issuer_alg", "token_alg"), [("ES256", "EdDSA"), ("EdDSA", "ES256")])
def test_alg_outside_the_callers_allow_list_is_refused(issuer_alg: str, token_alg: str) -> None:
    setup = make_setup(issuer_alg)
    attacker = key_unlike(setup, 66)
    presentation = forge(setup, header=issuer_header(setup, alg=token_alg), key=attacker)
    resolver = RecordingResolver(setup)

    with refused(P.AlgorithmNotAllowed, "alg_not_allowed"):
        verify(setup, presentation, resolver=resolver, allowed_algs=(issuer_alg,))
    assert resolver.calls == []


@pytest.mark.parametrize(
    "alg",
    ["RS256", "PS256", "ES384", "ES512", "ES256K", "HS512", "Ed25519", "es256", "eddsa", ""],
)
def test_alg_outside_es256_and_eddsa_is_refused(setup: Setup, alg: str) -> None:
    presentation = forge(setup, header=issuer_header(setup, alg=alg))

    with refused(P.AlgorithmNotAllowed, "alg_not_allowed"):
        verify(setup, presentation, allowed_algs=(alg, "ES256", "EdDSA"))


@pytest.mark.parametrize("alg", [None, 256, ["ES256"], {"alg": "ES256"}, DROP])
def test_alg_that_is_not_a_string_is_refused(setup: Setup, alg: Any) -> None:
    presentation = forge(setup, header=issuer_header(setup, alg=alg))

    with refused(P.AlgorithmNotAllowed, "alg_not_allowed"):
        verify(setup, presentation)


def test_kb_jwt_alg_not_matching_the_holder_key_is_refused(setup: Setup) -> None:
    attacker = key_unlike(setup, 67)

    with refused(P.AlgorithmKeyMismatch, "alg_key_mismatch"):
        verify(setup, forge(setup, holder_key=attacker))


# --- kid ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kid",
    [7, ["kid"], None, {"kid": "x"}, True, "", "k" * 257, DROP],
    ids=["int", "list", "null", "object", "bool", "empty", "too-long", "missing"],
)
def test_kid_that_is_not_a_short_string_is_refused(setup: Setup, kid: Any) -> None:
    resolver = RecordingResolver(setup)
    presentation = forge(setup, header=issuer_header(setup, kid=kid))

    with refused(P.InvalidKid, "invalid_kid"):
        verify(setup, presentation, resolver=resolver)
    assert resolver.calls == []


def test_unknown_kid_is_refused(setup: Setup) -> None:
    unknown = P.jwk_thumbprint(P.public_jwk(key_like(setup, 68)))
    presentation = forge(setup, header=issuer_header(setup, kid=unknown))

    with refused(P.UnknownKid, "unknown_kid"):
        verify(setup, presentation)


# --- key references in the header ---------------------------------------------------


def _key_reference(name: str, attacker: Any) -> Any:
    return {
        "jku": "https://evil.example/.well-known/jwks.json",
        "x5u": "https://evil.example/issuer.pem",
        "jwk": P.public_jwk(attacker),
        "x5c": ["MIIBszCCAVmgAwIBAgIUQ"],
    }[name]


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk"])
def test_key_reference_header_is_refused(setup: Setup, name: str) -> None:
    attacker = key_like(setup, 69)
    header = issuer_header(setup, **{name: _key_reference(name, attacker)})
    resolver = RecordingResolver(setup)

    with refused(P.ForbiddenHeader, "forbidden_header"):
        verify(setup, forge(setup, header=header), resolver=resolver)
    assert resolver.calls == []


def _certificate_of(key: Any, subject: Any) -> str:
    import base64

    ca = P.ca_certificate(key, name="attacker CA", not_before=NOW - 86400,
                          not_after=NOW + 86400, serial=3)  # fmt: skip
    leaf = P.leaf_certificate(key, ca, subject.public_key(), uri="https://xiamen.ccx.example",
                              name="x", not_before=NOW - 86400, not_after=NOW + 86400,
                              serial=4)  # fmt: skip
    return base64.b64encode(leaf).decode()


@pytest.mark.parametrize("chain", ["junk", "attacker"])
def test_an_x5c_naming_another_key_than_the_registrys_is_refused(setup: Setup, chain: str) -> None:
    """HAIP's x5c is for verifiers outside the alliance: ours resolve the key from the
    registry alone and refuse an x5c whose leaf is not that key, however well it chains
    (docs/PROTOCOL.md section 2). The attacker's key is never used."""
    attacker = key_like(setup, 69)
    x5c = ["MIIBszCCAVmgAwIBAgIUQ"] if chain == "junk" else [_certificate_of(attacker, attacker)]
    header = issuer_header(setup, x5c=x5c)
    with refused(P.ForbiddenHeader, "forbidden_header"):
        verify(setup, forge(setup, header=header, key=attacker))


def test_an_x5c_of_the_registry_key_is_accepted(setup: Setup) -> None:
    ca_key = key_like(setup, 68)
    x5c = [_certificate_of(ca_key, setup.issuer_key)]
    header = issuer_header(setup, x5c=x5c)
    assert verify(setup, forge(setup, header=header)).issuer == "https://xiamen.ccx.example"


@pytest.mark.parametrize("kid", ["attacker", "issuer"])
def test_embedded_jwk_of_the_key_that_really_signed_is_refused(setup: Setup, kid: str) -> None:
    attacker = key_like(setup, 70)
    attacker_jwk = P.public_jwk(attacker)
    header = issuer_header(
        setup,
        jwk=attacker_jwk,
        kid=P.jwk_thumbprint(attacker_jwk) if kid == "attacker" else setup.kid,
    )

    with refused(P.ForbiddenHeader, "forbidden_header"):
        verify(setup, forge(setup, header=header, key=attacker))


def test_kb_jwt_with_an_embedded_jwk_header_is_refused(setup: Setup) -> None:
    kb_header = {
        "alg": alg_of(setup.holder_key),
        "typ": "kb+jwt",
        "jwk": P.public_jwk(setup.holder_key),
    }

    with refused(P.ForbiddenHeader, "forbidden_header"):
        verify(setup, forge(setup, kb_header=kb_header))


# --- crit -----------------------------------------------------------------------------


@pytest.mark.parametrize("crit", [["x-ccx-unknown"], ["exp"], ["b64"], [], "b64"], ids=repr)
def test_unknown_crit_is_refused(setup: Setup, crit: Any) -> None:
    header = issuer_header(setup, crit=crit, b64=True)

    with refused(P.UnsupportedCritical, "unsupported_crit"):
        verify(setup, forge(setup, header=header))


# --- typ ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typ",
    ["jwt", "JWT", "vc+sd-jwt", "kb+jwt", "statuslist+jwt", "dc+sd-jwt+kb", None, DROP],
    ids=["jwt", "JWT", "vc+sd-jwt", "kb+jwt", "statuslist+jwt", "dc+sd-jwt+kb", "null", "missing"],
)
def test_wrong_or_missing_issuer_jwt_typ_is_refused(setup: Setup, typ: Any) -> None:
    # vc+sd-jwt is the pre-draft-06 media type; DESIGN 5 fixes dc+sd-jwt and there are no
    # legacy tokens to accept in this closed alliance.
    with refused(P.WrongTyp, "wrong_typ"):
        verify(setup, forge(setup, header=issuer_header(setup, typ=typ)))


@pytest.mark.parametrize(
    "typ",
    ["jwt", "JWT", "dc+sd-jwt", None, DROP],
    ids=["jwt", "JWT", "dc+sd-jwt", "null", "missing"],
)
def test_wrong_or_missing_kb_jwt_typ_is_refused(setup: Setup, typ: Any) -> None:
    kb_header = without_dropped({"alg": alg_of(setup.holder_key), "typ": typ})

    with refused(P.WrongTyp, "wrong_typ"):
        verify(setup, forge(setup, kb_header=kb_header))


# --- key binding ----------------------------------------------------------------------


def test_stripped_kb_jwt_is_refused(setup: Setup) -> None:
    presentation = setup.present(("score_at_least.650",))
    stripped = presentation[: presentation.rindex("~") + 1]

    with refused(P.KeyBindingMissing, "kb_missing"):
        setup.verify(stripped)


def test_bare_issued_attestation_is_refused_as_a_presentation(setup: Setup) -> None:
    with refused(P.KeyBindingMissing, "kb_missing"):
        setup.verify(setup.attestation)


def test_kb_jwt_signed_by_another_key_is_refused(setup: Setup) -> None:
    thief = key_like(setup, 71)
    presentation = P.present(
        setup.attestation,
        disclose=("score_at_least.650",),
        holder_key=thief,
        aud=VERIFIER,
        nonce=NONCE,
        now=KB_IAT,
    )

    with refused(P.KeyBindingInvalidSignature, "kb_invalid_signature"):
        setup.verify(presentation)


def test_kb_jwt_signed_by_the_issuer_key_is_refused(setup: Setup) -> None:
    with refused(P.KeyBindingInvalidSignature, "kb_invalid_signature"):
        setup.verify(forge(setup, holder_key=setup.issuer_key))


def test_replayed_nonce_is_refused(setup: Setup) -> None:
    presentation = setup.present(nonce="nonce-A")
    setup.verify(presentation, nonce="nonce-A")  # valid for the challenge it answered

    with refused(P.NonceMismatch, "nonce_mismatch"):
        setup.verify(presentation, nonce="nonce-B")


@pytest.mark.parametrize(
    "nonce", [DROP, None, 1, ["nonce-1"]], ids=["missing", "null", "int", "list"]
)
def test_kb_jwt_without_a_string_nonce_is_refused(setup: Setup, nonce: Any) -> None:
    with refused(P.MissingClaim, "missing_claim"):
        verify(setup, forge(setup, nonce=nonce))


@pytest.mark.parametrize(
    "aud",
    [OTHER_VERIFIER, VERIFIER + "/", VERIFIER.upper(), VERIFIER + ".evil.example", ""],
)
def test_kb_jwt_for_another_verifier_is_refused(setup: Setup, aud: str) -> None:
    with refused(P.AudienceMismatch, "aud_mismatch"):
        setup.verify(setup.present(aud=aud))


@pytest.mark.parametrize(
    "aud",
    [[VERIFIER], [VERIFIER, OTHER_VERIFIER], {"aud": VERIFIER}, None, DROP],
    ids=["array-of-one", "array-of-two", "object", "null", "missing"],
)
def test_kb_aud_that_is_not_a_single_string_is_refused(setup: Setup, aud: Any) -> None:
    with refused(P.AudienceNotString, "aud_not_string"):
        verify(setup, forge(setup, aud=aud))


def test_stale_kb_iat_is_refused(setup: Setup) -> None:
    presentation = setup.present(now=NOW)

    with refused(P.KeyBindingIatOutOfWindow, "kb_iat_out_of_window"):
        setup.verify(presentation, now=NOW + 3600)


def test_future_kb_iat_is_refused(setup: Setup) -> None:
    presentation = setup.present(now=NOW + 3600)

    with refused(P.KeyBindingIatOutOfWindow, "kb_iat_out_of_window"):
        setup.verify(presentation, now=NOW)


@pytest.mark.parametrize(
    ("age", "accepted"),
    [(300, True), (330, True), (331, False), (-30, True), (-31, False)],
    ids=[
        "max-age",
        "max-age-plus-leeway",
        "one-second-older",
        "leeway-ahead",
        "one-second-further",
    ],
)
def test_kb_iat_window_edges(setup: Setup, age: int, accepted: bool) -> None:
    # The window is [now - kb_max_age - leeway, now + leeway] with kb_max_age=300, leeway=30.
    presentation = setup.present(now=NOW + 1000 - age)

    if accepted:
        setup.verify(presentation, now=NOW + 1000)
    else:
        with refused(P.KeyBindingIatOutOfWindow, "kb_iat_out_of_window"):
            setup.verify(presentation, now=NOW + 1000)


@pytest.mark.parametrize(
    ("iat", "error", "code"),
    [
        (DROP, P.MissingClaim, "missing_claim"),
        (None, P.MissingClaim, "missing_claim"),
        (str(KB_IAT), P.InvalidClaim, "invalid_claim"),
        (True, P.InvalidClaim, "invalid_claim"),
    ],
    ids=["missing", "null", "string", "bool"],
)
def test_kb_iat_that_is_not_a_numeric_date_is_refused(
    setup: Setup, iat: Any, error: type[P.ProtocolError], code: str
) -> None:
    with refused(error, code):
        verify(setup, forge(setup, iat=iat))


def test_kb_jwt_without_sd_hash_is_refused(setup: Setup) -> None:
    with refused(P.MissingClaim, "missing_claim"):
        verify(setup, forge(setup, sd_hash=DROP))


def test_sd_hash_over_other_disclosures_is_refused(setup: Setup) -> None:
    for_a = setup.present(("score_at_least.650",))
    for_b = setup.present(("alliance_score",))
    issuer_jwt, disclosures_b, _ = split(for_b)
    _, _, kb_for_a = split(for_a)
    swapped = "~".join([issuer_jwt, *disclosures_b, kb_for_a])

    with refused(P.SdHashMismatch, "sd_hash_mismatch"):
        setup.verify(swapped)


def test_dropping_a_disclosure_after_key_binding_is_refused(setup: Setup) -> None:
    issuer_jwt, disclosures, kb_jwt = split(setup.present(("band", "score_at_least.650")))
    dropped = "~".join([issuer_jwt, disclosures[0], kb_jwt])

    with refused(P.SdHashMismatch, "sd_hash_mismatch"):
        setup.verify(dropped)


def test_adding_a_disclosure_after_key_binding_is_refused(setup: Setup) -> None:
    issuer_jwt, disclosures, kb_jwt = split(setup.present(("score_at_least.700",)))
    added = "~".join([issuer_jwt, *disclosures, issued(setup).disclosures["band"], kb_jwt])

    with refused(P.SdHashMismatch, "sd_hash_mismatch"):
        setup.verify(added)


def test_reordering_disclosures_after_key_binding_is_refused(setup: Setup) -> None:
    issuer_jwt, disclosures, kb_jwt = split(setup.present(("band", "score_at_least.650")))
    reordered = "~".join([issuer_jwt, *reversed(disclosures), kb_jwt])

    with refused(P.SdHashMismatch, "sd_hash_mismatch"):
        setup.verify(reordered)


def test_sd_hash_over_the_prefix_without_its_final_tilde_is_refused(setup: Setup) -> None:
    base = issued(setup)
    issuer_jwt = compact(issuer_header(setup), base.payload, setup.issuer_key)
    disclosures = [base.disclosures["band"]]
    without_tilde = "~".join([issuer_jwt, *disclosures])

    with refused(P.SdHashMismatch, "sd_hash_mismatch"):
        verify(
            setup,
            bind(issuer_jwt, disclosures, setup.holder_key, sd_hash=sd_hash_of(without_tilde)),
        )


# --- disclosures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [("score_at_least.700", True), ("alliance_score", 800), ("band", "excellent")],
)
def test_altered_disclosure_is_refused(setup: Setup, path: str, value: Any) -> None:
    # The holder rewrites a value under the issuer's salt and re-signs the KB-JWT over it;
    # only the issuer-signed digest stands in the way.
    salt, name, _ = unb64json(issued(setup).disclosures[path])
    altered = b64(to_json([salt, name, value]))

    with refused(P.UnreferencedDisclosure, "unreferenced_disclosure"):
        verify(setup, forge(setup, disclosures=[altered]))


def test_duplicated_disclosure_is_refused(setup: Setup) -> None:
    disclosure = issued(setup).disclosures["score_at_least.650"]

    with refused(P.DuplicateDisclosure, "duplicate_disclosure"):
        verify(setup, forge(setup, disclosures=[disclosure, disclosure]))


def test_unreferenced_disclosure_is_refused(setup: Setup) -> None:
    unsigned = new_disclosure("band", "excellent")

    with refused(P.UnreferencedDisclosure, "unreferenced_disclosure"):
        verify(
            setup,
            forge(setup, disclosures=[issued(setup).disclosures["score_at_least.650"], unsigned]),
        )


def test_disclosure_from_another_attestation_is_refused(setup: Setup) -> None:
    # A genuine disclosure of the same issuer, but signed into someone else's attestation.
    def other_salts(n: int) -> bytes:
        return hashlib.sha256(b"another resident" + next(counter).to_bytes(4, "big")).digest()[:n]

    counter = iter(range(1000))
    richer = issue(setup, salt=other_salts, alliance_score=820, band="excellent")
    borrowed = issued(richer).disclosures["alliance_score"]

    with refused(P.UnreferencedDisclosure, "unreferenced_disclosure"):
        verify(setup, forge(setup, disclosures=[borrowed]))


@pytest.mark.parametrize("name", ["_sd", "..."])
def test_disclosure_with_a_reserved_claim_name_is_refused(setup: Setup, name: str) -> None:
    base = issued(setup)
    reserved = new_disclosure(name, ["AAAA"] if name == "_sd" else "x")
    reference(base.payload, reserved)

    with refused(P.ForbiddenClaimName, "forbidden_claim_name"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[reserved]))


def test_disclosed_name_colliding_with_a_visible_claim_is_refused(setup: Setup) -> None:
    # The issuer signs a visible band and also the (referenced) disclosure for band.
    base = issued(setup)
    base.payload["band"] = "excellent"

    with refused(P.ClaimNameCollision, "claim_collision"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[base.disclosures["band"]]))


def test_disclosed_threshold_colliding_with_a_visible_threshold_is_refused(setup: Setup) -> None:
    base = issued(setup)
    base.payload["score_at_least"]["650"] = False

    with refused(P.ClaimNameCollision, "claim_collision"):
        verify(setup, forge(setup, payload=base.payload))


def test_two_disclosures_for_the_same_claim_are_refused(setup: Setup) -> None:
    base = issued(setup)
    second = new_disclosure("band", "excellent")
    reference(base.payload, second)
    disclosures = [base.disclosures["band"], second]

    with refused(P.ClaimNameCollision, "claim_collision"):
        verify(setup, forge(setup, payload=base.payload, disclosures=disclosures))


@pytest.mark.parametrize("sd_alg", ["sha-512", "MD5", "sha-1", "sha3-256", None, ["sha-256"]])
def test_unknown_sd_alg_is_refused(setup: Setup, sd_alg: Any) -> None:
    base = issued(setup)
    base.payload["_sd_alg"] = sd_alg

    with refused(P.UnsupportedSdAlg, "unsupported_sd_alg"):
        verify(setup, forge(setup, payload=base.payload))


def test_missing_sd_alg_is_refused(setup: Setup) -> None:
    base = issued(setup)
    del base.payload["_sd_alg"]

    with refused(P.MissingClaim, "missing_claim"):
        verify(setup, forge(setup, payload=base.payload))


# --- validity period ------------------------------------------------------------------

EXP = NOW + 30 * 86400


def test_expired_attestation_is_refused(setup: Setup) -> None:
    presentation = setup.present(now=EXP + 31)

    with refused(P.TokenExpired, "expired"):
        setup.verify(presentation, now=EXP + 31)


def test_not_yet_valid_attestation_is_refused(setup: Setup) -> None:
    later = issue(setup, nbf=NOW + 3600)

    with refused(P.TokenNotYetValid, "not_yet_valid"):
        later.verify(later.present())


def test_attestation_issued_in_the_future_is_refused(setup: Setup) -> None:
    # nbf is in the past, so only iat is wrong.
    future = issue(setup, now=NOW + 3600, nbf=NOW - 60)

    with refused(P.IssuedInFuture, "issued_in_future"):
        future.verify(future.present())


@pytest.mark.parametrize(
    ("claim", "offset", "error", "code"),
    [
        ("exp", 30, None, None),
        ("exp", 31, P.TokenExpired, "expired"),
        ("nbf", -30, None, None),
        ("nbf", -31, P.TokenNotYetValid, "not_yet_valid"),
        ("iat", -30, None, None),
        ("iat", -31, P.IssuedInFuture, "issued_in_future"),
    ],
)
def test_validity_leeway_of_30_seconds_is_honoured_at_the_edges(
    setup: Setup, claim: str, offset: int, error: type[P.ProtocolError] | None, code: str | None
) -> None:
    at = NOW + 5000
    if claim == "exp":
        subject = issue(setup, exp=at)
    elif claim == "nbf":
        subject = issue(setup, nbf=at)
    else:
        subject = issue(setup, now=at, nbf=NOW)
    now = at + offset
    presentation = subject.present(now=now)

    if error is None:
        subject.verify(presentation, now=now)
    else:
        with refused(error, code or ""):
            subject.verify(presentation, now=now)


def test_payload_changed_after_signing_is_refused(setup: Setup) -> None:
    # The issuer's real signature over the original payload, moved onto a payload whose
    # lifetime the holder extended by a year.
    base = issued(setup)
    jwt = setup.attestation.split("~")[0]
    original_signature = base64.urlsafe_b64decode(jwt.split(".")[2] + "==")
    verify(setup, forge(setup, payload=base.payload, signature=original_signature))  # control
    base.payload["exp"] += 365 * 86400

    with refused(P.InvalidSignature, "invalid_signature"):
        verify(setup, forge(setup, payload=base.payload, signature=original_signature))


# --- the recipients the attestation names (aud; issue 19, item 4) ---------------------


def _with_audience(setup: Setup, aud: Any) -> dict[str, Any]:
    """The standard payload with the issuer-signed ``aud`` set to ``aud`` (``DROP``: none)."""
    payload = issued(setup).payload
    if aud is DROP:
        payload.pop("aud", None)
    else:
        payload["aud"] = aud
    return payload


@pytest.mark.parametrize(
    "aud",
    [[OTHER_VERIFIER], OTHER_VERIFIER, [OTHER_VERIFIER, ATTACKER_ISS]],
    ids=["array-of-one", "string", "array-of-two"],
)
def test_attestation_for_other_recipients_is_refused(setup: Setup, aud: Any) -> None:
    # RFC 7519 section 4.1.3: aud present and not naming the processing party: reject.
    presentation = forge(setup, payload=_with_audience(setup, aud))

    with refused(P.RecipientNotNamed, "recipient_not_named") as info:
        verify(setup, presentation)
    assert info.value.http_status == 403


@pytest.mark.parametrize(
    "aud",
    [VERIFIER + "/", VERIFIER.upper(), VERIFIER + ".evil.example", VERIFIER[:-1], " " + VERIFIER],
    ids=["trailing-slash", "upper-case", "longer", "prefix", "leading-space"],
)
def test_recipient_that_only_resembles_this_verifier_is_refused(setup: Setup, aud: str) -> None:
    presentation = forge(setup, payload=_with_audience(setup, [OTHER_VERIFIER, aud]))

    with refused(P.RecipientNotNamed, "recipient_not_named"):
        verify(setup, presentation)


@pytest.mark.parametrize(
    "aud",
    [[VERIFIER], VERIFIER, [OTHER_VERIFIER, VERIFIER], DROP],
    ids=["array-of-one", "string", "array-of-two", "no-aud"],
)
def test_attestation_naming_this_verifier_or_no_one_verifies(setup: Setup, aud: Any) -> None:
    verified = verify(setup, forge(setup, payload=_with_audience(setup, aud)))

    expected = None if aud is DROP else tuple([aud] if isinstance(aud, str) else aud)
    assert verified.audience == expected
    assert dict(verified.disclosed) == {"score_at_least": {"650": True}}


@pytest.mark.parametrize(
    "aud",
    [[], "", [""], [VERIFIER, 5], 5, None, {"aud": VERIFIER}, True],
    ids=["empty-array", "empty-string", "array-of-empty", "non-string", "number", "null",
         "object", "boolean"],
)  # fmt: skip
def test_aud_that_is_not_a_string_or_an_array_of_strings_is_refused(setup: Setup, aud: Any) -> None:
    with refused(P.InvalidClaim, "invalid_claim"):
        verify(setup, forge(setup, payload=_with_audience(setup, aud)))


def test_holder_removing_the_aud_is_refused(setup: Setup) -> None:
    # The issuer's signature over a payload naming another verifier, moved onto the same
    # payload without its aud: the restriction can't be stripped.
    payload = _with_audience(setup, [OTHER_VERIFIER])
    original = compact(issuer_header(setup), payload, setup.issuer_key)
    signature = base64.urlsafe_b64decode(original.split(".")[2] + "==")
    del payload["aud"]

    with refused(P.InvalidSignature, "invalid_signature"):
        verify(setup, forge(setup, payload=payload, signature=signature))


def test_aud_is_checked_after_the_signature(setup: Setup) -> None:
    impostor = key_like(setup, 74)
    presentation = forge(setup, payload=_with_audience(setup, [OTHER_VERIFIER]), key=impostor)

    with refused(P.InvalidSignature, "invalid_signature"):
        verify(setup, presentation)


def test_aud_is_checked_before_any_disclosure_or_key_binding(setup: Setup) -> None:
    # A verifier not named learns nothing further: it stops before reading disclosures
    # (here an unreferenced one) and before the KB-JWT (here for another verifier).
    stray = new_disclosure("nickname", "egret")
    presentation = forge(
        setup,
        payload=_with_audience(setup, [OTHER_VERIFIER]),
        disclosures=[stray],
        aud=OTHER_VERIFIER,
    )

    with refused(P.RecipientNotNamed, "recipient_not_named"):
        verify(setup, presentation)


def test_aud_hidden_in_a_disclosure_is_refused(setup: Setup) -> None:
    # A disclosable aud would let the holder drop the restriction by not disclosing it.
    base = issued(setup)
    hidden = new_disclosure("aud", [OTHER_VERIFIER])
    reference(base.payload, hidden)

    with refused(P.ProtectedClaimDisclosed, "protected_claim_in_disclosure"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[hidden]))


def test_the_generic_verifier_enforces_aud_too(setup: Setup) -> None:
    presentation = forge(setup, payload=_with_audience(setup, [OTHER_VERIFIER]))

    with refused(P.RecipientNotNamed, "recipient_not_named"):
        P.verify_sd_jwt(
            presentation,
            typ=TYP,
            resolve_issuer_key=setup.resolve,
            aud=VERIFIER,
            nonce=NONCE,
            now=VERIFY_AT,
        )


# --- claims that must stay visible ---------------------------------------------------


def _hide(setup: Setup, name: str) -> tuple[dict[str, Any], str]:
    """The issuer moves a visible claim into a referenced disclosure."""
    base = issued(setup)
    hidden = new_disclosure(name, base.payload.pop(name))
    reference(base.payload, hidden)
    return base.payload, hidden


def test_exp_hidden_in_a_disclosure_is_refused(setup: Setup) -> None:
    payload, hidden = _hide(setup, "exp")

    with refused(P.MissingClaim, "missing_claim"):
        verify(setup, forge(setup, payload=payload, disclosures=[hidden]))


def test_cnf_hidden_in_a_disclosure_is_refused(setup: Setup) -> None:
    payload, hidden = _hide(setup, "cnf")

    with refused(P.MissingClaim, "missing_claim"):
        verify(setup, forge(setup, payload=payload, disclosures=[hidden]))


def test_status_hidden_in_a_disclosure_is_refused(setup: Setup) -> None:
    payload, hidden = _hide(setup, "status")

    with refused(P.MissingClaim, "missing_claim"):
        verify(setup, forge(setup, payload=payload, disclosures=[hidden]))


@pytest.mark.parametrize("name", ["iss", "iat", "nbf", "vct", "alliance", "mapping"])
def test_other_always_visible_claim_hidden_in_a_disclosure_is_refused(
    setup: Setup, name: str
) -> None:
    payload, hidden = _hide(setup, name)

    with refused(P.MissingClaim, "missing_claim"):
        verify(setup, forge(setup, payload=payload, disclosures=[hidden]))


@pytest.mark.parametrize(
    "name", ["iss", "iat", "nbf", "exp", "vct", "cnf", "status", "alliance", "mapping"]
)
def test_always_visible_claim_also_disclosed_is_refused(setup: Setup, name: str) -> None:
    base = issued(setup)
    shadow = new_disclosure(name, base.payload[name])
    reference(base.payload, shadow)

    with refused(P.ClaimNameCollision, "claim_collision"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[shadow]))


def test_sd_alg_disclosed_is_refused(setup: Setup) -> None:
    # _sd_alg is not copied into the processed claims, so it cannot collide: this is the
    # one always-visible name that reaches the ProtectedClaimDisclosed check.
    base = issued(setup)
    shadow = new_disclosure("_sd_alg", "sha-256")
    reference(base.payload, shadow)

    with refused(P.ProtectedClaimDisclosed, "protected_claim_in_disclosure"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[shadow]))


# --- duplicate JSON member names -----------------------------------------------------


def _inject_first(json_bytes: bytes, member: bytes) -> bytes:
    """Insert ``"name":value,`` right after the opening brace of a JSON object."""
    assert json_bytes.startswith(b"{")
    return b"{" + member + b"," + json_bytes[1:]


def test_duplicate_key_in_the_issuer_header_is_refused(setup: Setup) -> None:
    # A lenient parser keeps the last "alg" and sees a valid token.
    header = _inject_first(to_json(issuer_header(setup)), b'"alg":"none"')

    with refused(P.DuplicateJsonKey, "duplicate_json_key"):
        verify(setup, forge(setup, header=header))


def test_duplicate_key_in_the_issuer_payload_is_refused(setup: Setup) -> None:
    payload = to_json(issued(setup).payload)
    assert payload.startswith(b'{"iss":')
    payload = _inject_first(payload, f'"iss":"{ATTACKER_ISS}"'.encode())

    with refused(P.DuplicateJsonKey, "duplicate_json_key"):
        verify(setup, forge(setup, payload=payload))


def test_duplicate_key_in_a_disclosure_is_refused(setup: Setup) -> None:
    base = issued(setup)
    salt = unb64json(base.disclosures["local_scale"])[0]
    text = f'["{salt}","local_scale",{{"name":"egret","min":0,"max":1000,"max":10,"step":1}}]'
    disclosure = b64(text.encode())
    reference(base.payload, disclosure)

    with refused(P.DuplicateJsonKey, "duplicate_json_key"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[disclosure]))


def test_duplicate_key_in_the_kb_jwt_payload_is_refused(setup: Setup) -> None:
    def payload(sd_hash: str) -> bytes:
        claims = {"iat": KB_IAT, "aud": VERIFIER, "nonce": NONCE, "sd_hash": sd_hash}
        return _inject_first(to_json(claims), f'"aud":"{OTHER_VERIFIER}"'.encode())

    with refused(P.DuplicateJsonKey, "duplicate_json_key"):
        verify(setup, forge(setup, kb_payload=payload))


def test_duplicate_key_in_the_kb_jwt_header_is_refused(setup: Setup) -> None:
    kb_header = _inject_first(
        to_json({"alg": alg_of(setup.holder_key), "typ": "kb+jwt"}), b'"typ":"jwt"'
    )

    with refused(P.DuplicateJsonKey, "duplicate_json_key"):
        verify(setup, forge(setup, kb_header=kb_header))


# --- size and encoding ----------------------------------------------------------------


def test_token_over_the_size_limit_is_refused(setup: Setup) -> None:
    base = issued(setup)
    base.payload["padding"] = "A" * 14_000
    presentation = forge(setup, payload=base.payload)
    assert len(presentation) > 16_384
    verify(setup, presentation, max_size=1_000_000)  # too large is its only fault

    with refused(P.TokenTooLarge, "token_too_large"):
        verify(setup, presentation)


def test_size_limit_is_exact(setup: Setup) -> None:
    presentation = setup.present()
    verify(setup, presentation, max_size=len(presentation))

    with refused(P.TokenTooLarge, "token_too_large"):
        verify(setup, presentation, max_size=len(presentation) - 1)


def test_more_than_64_disclosures_is_refused(setup: Setup) -> None:
    base = issued(setup)
    extras = [new_disclosure(f"x{i}", i) for i in range(65)]
    reference(base.payload, *extras)
    verify(setup, forge(setup, payload=base.payload, disclosures=extras[:64]))  # the limit

    with refused(P.TokenTooLarge, "token_too_large"):
        verify(setup, forge(setup, payload=base.payload, disclosures=extras))


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respell(segment: str, form: str) -> str | None:
    """Another spelling of the same bytes that strict base64url (RFC 4648 s. 3.5, 5) refuses.

    None when this segment has no such spelling in that form (no unused bits, no '-'/'_').
    """
    if form in ("trailing-bits", "padding") and len(segment) % 4 not in (2, 3):
        return None
    if form == "trailing-bits":
        return segment[:-1] + _ALPHABET[_ALPHABET.index(segment[-1]) + 1]  # an unused bit set
    if form == "padding":
        return segment + "=" * (-len(segment) % 4)
    i = next((i for i, c in enumerate(segment) if c in "-_"), None)
    if i is None:
        return None
    return segment[:i] + {"-": "+", "_": "/"}[segment[i]] + segment[i + 1 :]


def _lenient_decode(segment: str) -> bytes:
    core = segment.rstrip("=").replace("-", "+").replace("_", "/")
    return base64.b64decode(core + "=" * (-len(core) % 4))


def _with_segment(setup: Setup, target: str, attempt: int) -> tuple[str, Callable[[str], str]]:
    """A segment of a valid presentation, and how to rebuild the presentation around
    another spelling of it (re-binding the KB-JWT when the segment sits in its prefix)."""
    base = issued(setup)
    salt = b64(hashlib.sha256(attempt.to_bytes(4, "big")).digest()[:16])
    # Of three "?" (0x3f) one ends a 3-byte group, and encodes to "_".
    extra = new_disclosure("nickname", "egret???" + "s" * (attempt % 3), salt=salt)
    reference(base.payload, extra)
    issuer_jwt = compact(issuer_header(setup, n=attempt), base.payload, setup.issuer_key)
    disclosures = [issued(setup).disclosures["band"]]
    if target == "disclosure":  # issuer-signed, so only its spelling can be at fault
        return extra, lambda text: bind(issuer_jwt, [text], setup.holder_key)
    if target == "issuer-signature":
        signed, signature = issuer_jwt.rsplit(".", 1)
        return signature, lambda text: bind(f"{signed}.{text}", disclosures, setup.holder_key)
    valid = bind(issuer_jwt, disclosures, setup.holder_key)
    kb_signature = valid.rsplit(".", 1)[1]
    return kb_signature, lambda text: valid[: -len(kb_signature)] + text


@pytest.mark.parametrize("form", ["trailing-bits", "padding", "standard-alphabet"])
@pytest.mark.parametrize("target", ["issuer-signature", "kb-signature", "disclosure"])
def test_non_canonical_base64url_is_refused(setup: Setup, target: str, form: str) -> None:
    # Vary a harmless input (a header member, a salt) until the segment has a spelling of
    # that form: a signature always has unused bits, '-' or '_' turn up within a few tries.
    for attempt in range(100):
        original, presentation_with = _with_segment(setup, target, attempt)
        altered = _respell(original, form)
        if altered is not None:
            break
    assert altered is not None
    assert altered != original
    assert _lenient_decode(altered) == _lenient_decode(original)  # same bytes, other text
    error, code = (
        (P.MalformedDisclosure, "malformed_disclosure")
        if target == "disclosure"
        else (P.MalformedToken, "malformed_token")
    )
    verify(setup, presentation_with(original))  # the canonical spelling is valid

    with refused(error, code):
        verify(setup, presentation_with(altered))


# --- the key resolver -----------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [KeyError("kid"), LookupError("x"), RuntimeError("db down"), ValueError("x"), TypeError("x")],
    ids=lambda exc: type(exc).__name__,
)
def test_resolver_raising_an_arbitrary_exception_is_refused(
    setup: Setup, failure: Exception
) -> None:
    def resolver(iss: str, kid: str | None, alg: str) -> P.PublicKey:
        raise failure

    with refused(P.UnknownKid, "unknown_kid") as info:
        verify(setup, setup.present(), resolver=resolver)
    assert info.value.__cause__ is failure


@pytest.mark.parametrize("returned", ["none", "private-key", "p-384", "string"])
def test_resolver_returning_something_other_than_a_public_key_is_refused(
    setup: Setup, returned: str
) -> None:
    value = {
        "none": None,
        "private-key": setup.issuer_key,
        "p-384": ec.derive_private_key(12345, ec.SECP384R1()).public_key(),
        "string": P.public_jwk(setup.issuer_key)["x"],
    }[returned]

    with refused(P.AlgorithmKeyMismatch, "alg_key_mismatch"):
        verify(setup, setup.present(), resolver=lambda iss, kid, alg: value)


def test_issuer_not_in_the_alliance_is_refused(setup: Setup) -> None:
    outsider = key_like(setup, 72)
    base = issued(setup)
    base.payload["iss"] = ATTACKER_ISS
    kid = P.jwk_thumbprint(P.public_jwk(outsider))
    resolver = RecordingResolver(setup)
    presentation = forge(
        setup, header=issuer_header(setup, kid=kid), payload=base.payload, key=outsider
    )

    with refused(P.IssuerNotMember, "issuer_not_member"):
        verify(setup, presentation, resolver=resolver)
    assert resolver.calls == [(ATTACKER_ISS, kid, alg_of(outsider))]


def test_signature_by_another_key_under_a_known_kid_is_refused(setup: Setup) -> None:
    impostor = key_like(setup, 73)

    with refused(P.InvalidSignature, "invalid_signature"):
        verify(setup, forge(setup, key=impostor))


@pytest.mark.parametrize("signature", ["zeros", "ones", "truncated", "overlong", "empty"])
def test_malformed_issuer_signature_is_refused(setup: Setup, signature: str) -> None:
    text = signing_input(issuer_header(setup), issued(setup).payload).encode()
    genuine = raw_signature(setup.issuer_key, text)
    value = {
        "zeros": bytes(64),
        "ones": b"\xff" * 64,
        "truncated": genuine[:63],
        "overlong": genuine + b"\x00",
        "empty": b"",
    }[signature]

    with refused(P.InvalidSignature, "invalid_signature"):
        verify(setup, forge(setup, signature=value))


def test_der_encoded_es256_signature_is_refused(es256: Setup) -> None:
    # RFC 7518 section 3.4: ES256 is r || s, 64 bytes; DER is another encoding of it.
    text = signing_input(issuer_header(es256), issued(es256).payload).encode()
    der = es256.issuer_key.sign(text, ec.ECDSA(hashes.SHA256()))

    with refused(P.InvalidSignature, "invalid_signature"):
        verify(es256, forge(es256, signature=der))


# --- hostile shapes -------------------------------------------------------------------


def _withdraw(base: Issued, name: str) -> None:
    """Remove the issuer's own digest for ``name``, so that a replacement does not collide."""
    base.payload["_sd"].remove(digest_of(base.disclosures[name]))


@pytest.mark.parametrize("payload", [[], ["iss"], "iss", 1, b"null"], ids=repr)
def test_issuer_payload_that_is_not_a_json_object_is_refused(setup: Setup, payload: Any) -> None:
    with refused(P.MalformedToken, "malformed_token"):
        verify(setup, forge(setup, payload=payload))


def test_issuer_header_that_is_a_json_array_is_refused(setup: Setup) -> None:
    with refused(P.MalformedToken, "malformed_token"):
        verify(setup, forge(setup, header=[issuer_header(setup)]))


def test_kb_jwt_payload_that_is_a_json_array_is_refused(setup: Setup) -> None:
    with refused(P.MalformedToken, "malformed_token"):
        verify(setup, forge(setup, kb_payload=lambda sd_hash: to_json([sd_hash])))


@pytest.mark.parametrize("where", ["top", "nested"])
@pytest.mark.parametrize("sd", ["AAAA", {"AAAA": 1}, None, 5, True], ids=repr)
def test_sd_that_is_not_an_array_is_refused(setup: Setup, where: str, sd: Any) -> None:
    base = issued(setup)
    (base.payload if where == "top" else base.payload["score_at_least"])["_sd"] = sd
    disclosures = [] if where == "nested" else [base.disclosures["score_at_least.650"]]

    with refused(P.MalformedToken, "malformed_token"):
        verify(setup, forge(setup, payload=base.payload, disclosures=disclosures))


@pytest.mark.parametrize("element", [5, None, ["AAAA"], {"AAAA": 1}], ids=repr)
def test_sd_with_a_digest_that_is_not_a_string_is_refused(setup: Setup, element: Any) -> None:
    base = issued(setup)
    base.payload["_sd"].append(element)

    with refused(P.MalformedToken, "malformed_token"):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize("where", ["same-array", "across-arrays"])
def test_repeated_digest_is_refused(setup: Setup, where: str) -> None:
    base = issued(setup)
    repeated = base.payload["_sd"][0]
    target = base.payload if where == "same-array" else base.payload["score_at_least"]
    target["_sd"] = sorted([*target["_sd"], repeated])

    with refused(P.DuplicateDigest, "duplicate_digest"):
        verify(setup, forge(setup, payload=base.payload))


def test_holder_jwk_with_a_private_member_is_refused(setup: Setup) -> None:
    base = issued(setup)
    base.payload["cnf"]["jwk"]["d"] = b64(bytes(32))

    with refused(P.InvalidKey, "invalid_key"):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize(
    ("cnf", "error", "code"),
    [
        ({"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}, P.InvalidKey, "invalid_key"),
        ({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}, P.InvalidKey, "invalid_key"),
        ({"jwk": "not-a-jwk"}, P.MissingClaim, "missing_claim"),
        ({"jkt": "AAAA"}, P.MissingClaim, "missing_claim"),
        ("not-an-object", P.MissingClaim, "missing_claim"),
    ],
    ids=["rsa", "symmetric", "jwk-string", "jkt-only", "cnf-string"],
)
def test_unusable_holder_key_binding_is_refused(
    setup: Setup, cnf: Any, error: type[P.ProtocolError], code: str
) -> None:
    base = issued(setup)
    base.payload["cnf"] = cnf

    with refused(error, code):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize(
    "idx",
    [-1, "4242", 4242.0, True, None, [4242]],
    ids=["negative", "string", "float", "bool", "null", "list"],
)
def test_status_index_that_is_not_a_non_negative_integer_is_refused(setup: Setup, idx: Any) -> None:
    base = issued(setup)
    base.payload["status"]["status_list"]["idx"] = idx

    with refused(P.InvalidClaim, "invalid_claim"):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        ({"status_list": {"uri": STATUS_URI}}, P.MissingClaim, "missing_claim"),
        ({"status_list": {"idx": 1}}, P.MissingClaim, "missing_claim"),
        ({"status_list": {"idx": 1, "uri": 7}}, P.InvalidClaim, "invalid_claim"),
        ({}, P.MissingClaim, "missing_claim"),
        ("revoked-never", P.InvalidClaim, "invalid_claim"),
    ],
    ids=["no-idx", "no-uri", "uri-int", "empty", "string"],
)
def test_malformed_status_reference_is_refused(
    setup: Setup, status: Any, error: type[P.ProtocolError], code: str
) -> None:
    base = issued(setup)
    base.payload["status"] = status

    with refused(error, code):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize("vct", ["urn:ccx:credit-standing:2", "urn:eu:pid:1", 1, None])
def test_wrong_vct_is_refused(setup: Setup, vct: Any) -> None:
    base = issued(setup)
    base.payload["vct"] = vct

    with refused(P.InvalidClaim, "invalid_claim"):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize("exp", [str(EXP), True, [EXP]], ids=["string", "bool", "list"])
def test_exp_that_is_not_a_numeric_date_is_refused(setup: Setup, exp: Any) -> None:
    base = issued(setup)
    base.payload["exp"] = exp

    with refused(P.InvalidClaim, "invalid_claim"):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize("iss", [None, "", 7, [ATTACKER_ISS]], ids=repr)
def test_iss_that_is_not_a_string_is_refused(setup: Setup, iss: Any) -> None:
    base = issued(setup)
    base.payload["iss"] = iss

    with refused(P.MissingClaim, "missing_claim"):
        verify(setup, forge(setup, payload=base.payload))


def test_sd_alg_below_the_top_level_is_refused(setup: Setup) -> None:
    base = issued(setup)
    base.payload["score_at_least"]["_sd_alg"] = "sha-256"

    with refused(P.InvalidClaim, "invalid_claim"):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize(
    ("name", "value"),
    [("alliance_score", 1001), ("alliance_score", -1), ("alliance_score", "672"), ("band", 3)],
)
def test_disclosed_credit_claim_of_the_wrong_type_is_refused(
    setup: Setup, name: str, value: Any
) -> None:
    base = issued(setup)
    _withdraw(base, name)
    forged = new_disclosure(name, value)
    reference(base.payload, forged)

    with refused(P.InvalidClaim, "invalid_claim"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[forged]))


def test_threshold_that_is_not_a_boolean_is_refused(setup: Setup) -> None:
    base = issued(setup)
    odd = new_disclosure("800", "yes")
    reference(base.payload["score_at_least"], odd)

    with refused(P.InvalidClaim, "invalid_claim"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[odd]))


def test_threshold_name_that_is_not_an_integer_is_refused(setup: Setup) -> None:
    base = issued(setup)
    odd = new_disclosure("²", True)
    reference(base.payload["score_at_least"], odd)

    with refused(P.InvalidClaim, "invalid_claim"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[odd]))


def test_array_element_disclosure_referenced_from_an_object_is_refused(setup: Setup) -> None:
    base = issued(setup)
    element = new_disclosure(None, "good")
    reference(base.payload, element)

    with refused(P.MalformedDisclosure, "malformed_disclosure"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[element]))


def test_object_disclosure_referenced_from_an_array_is_refused(setup: Setup) -> None:
    base = issued(setup)
    named = new_disclosure("band", "excellent")
    base.payload["history"] = [{"...": digest_of(named)}]

    with refused(P.MalformedDisclosure, "malformed_disclosure"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[named]))


@pytest.mark.parametrize(
    "element", [{"...": 5}, {"...": "AAAA", "x": 1}], ids=["non-string", "extra-member"]
)
def test_malformed_array_element_digest_is_refused(setup: Setup, element: Any) -> None:
    base = issued(setup)
    base.payload["history"] = [element]

    with refused(P.MalformedToken, "malformed_token"):
        verify(setup, forge(setup, payload=base.payload))


@pytest.mark.parametrize(
    "items",
    [
        {"salt": "x", "name": "band"},
        ["c2FsdHNhbHRzYWx0c2FsdA"],
        ["c2FsdHNhbHRzYWx0c2FsdA", "band", "good", "extra"],
        [7, "band", "good"],
        ["c2FsdHNhbHRzYWx0c2FsdA", 7, "good"],
        ["c2FsdHNhbHRzYWx0c2FsdA", None, "good"],
        "band",
    ],
    ids=["object", "one-item", "four-items", "salt-int", "name-int", "name-null", "string"],
)
def test_malformed_disclosure_is_refused(setup: Setup, items: Any) -> None:
    base = issued(setup)
    disclosure = b64(to_json(items))
    reference(base.payload, disclosure)

    with refused(P.MalformedDisclosure, "malformed_disclosure"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[disclosure]))


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b'["s","band","good"] x', b'["s","band",NaN]'],
    ids=["not-utf8", "trailing-data", "nan"],
)
def test_disclosure_that_is_not_strict_json_is_refused(setup: Setup, raw: bytes) -> None:
    base = issued(setup)
    disclosure = b64(raw)
    reference(base.payload, disclosure)

    with refused(P.MalformedDisclosure, "malformed_disclosure"):
        verify(setup, forge(setup, payload=base.payload, disclosures=[disclosure]))


def test_empty_disclosure_is_refused(setup: Setup) -> None:
    with refused(P.MalformedDisclosure, "malformed_disclosure"):
        verify(setup, forge(setup, disclosures=[""]))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p: p.encode(),
        lambda p: p.replace("~", "\u223c", 1),
        lambda p: p.replace("~", ""),
        lambda p: p.replace(".", "", 1),
        lambda p: p.replace(".", "..", 1),
        lambda p: " " + p,
    ],
    ids=["bytes", "non-ascii", "no-tilde", "two-part-jwt", "four-part-jwt", "leading-space"],
)
def test_presentation_of_the_wrong_shape_is_refused(
    setup: Setup, mangle: Callable[[str], Any]
) -> None:
    with refused(P.MalformedToken, "malformed_token"):
        setup.verify(mangle(setup.present()))


def test_depth_bomb_of_10000_nested_arrays_in_a_disclosure_is_refused(setup: Setup) -> None:
    bomb = b64(b'["c2FsdHNhbHRzYWx0c2FsdA","local_scale",' + b"[" * 10_000 + b"]" * 10_000 + b"]")
    presentation = forge(setup, disclosures=[bomb])

    with refused(P.TokenTooLarge, "token_too_large"):
        verify(setup, presentation)
    with refused(P.MalformedDisclosure, "malformed_disclosure"):
        verify(setup, presentation, max_size=1_000_000)


@pytest.mark.parametrize("part", ["issuer-payload", "kb-payload"])
def test_depth_bomb_of_10000_nested_arrays_in_a_jwt_is_refused(setup: Setup, part: str) -> None:
    bomb = b'{"iss":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    if part == "issuer-payload":
        presentation = forge(setup, payload=bomb)
    else:
        presentation = forge(setup, kb_payload=bomb)

    with refused(P.MalformedToken, "malformed_token"):
        verify(setup, presentation, max_size=1_000_000)


@pytest.mark.parametrize("where", ["disclosure", "visible-claim"])
def test_issuer_signed_deep_nesting_is_refused_with_a_protocol_error(
    setup: Setup, where: str
) -> None:
    deep = json.loads("[" * 600 + "]" * 600)
    base = issued(setup)
    if where == "disclosure":
        nested = new_disclosure("local_scale", deep)
        _withdraw(base, "local_scale")
        reference(base.payload, nested)
        presentation = forge(setup, payload=base.payload, disclosures=[nested])
    else:
        base.payload["history"] = deep
        presentation = forge(setup, payload=base.payload)
    assert len(presentation) < 16_384

    try:
        with pytest.raises(P.ProtocolError):
            verify(setup, presentation)
    except RecursionError as exc:
        # Re-raised without its ~1000 frames, which pytest takes seconds to format.
        raise RecursionError(str(exc)) from None


@pytest.mark.parametrize("iat", [b"1e400", b"-1e400"])
def test_kb_iat_overflowing_to_infinity_is_refused(setup: Setup, iat: bytes) -> None:
    def payload(sd_hash: str) -> bytes:
        rest = to_json({"aud": VERIFIER, "nonce": NONCE, "sd_hash": sd_hash})
        return b'{"iat":' + iat + b"," + rest[1:]

    with pytest.raises(P.ProtocolError):
        verify(setup, forge(setup, kb_payload=payload))


def test_exp_overflowing_to_infinity_is_refused(setup: Setup) -> None:
    base = issued(setup)
    payload = to_json(base.payload).replace(f'"exp":{EXP}'.encode(), b'"exp":1e400')
    assert b"1e400" in payload

    with pytest.raises(P.ProtocolError):
        verify(setup, forge(setup, payload=payload))


@pytest.mark.parametrize(
    ("claim", "error"), [("nonce", P.NonceMismatch), ("sd_hash", P.SdHashMismatch)]
)
def test_kb_claim_with_a_lone_surrogate_is_refused(
    setup: Setup, claim: str, error: type[P.ProtocolError]
) -> None:
    def payload(sd_hash: str) -> bytes:
        claims = {"iat": KB_IAT, "aud": VERIFIER, "nonce": NONCE, "sd_hash": sd_hash}
        claims[claim] = "\ud800"
        return json.dumps(claims).encode()  # ensure_ascii: the text stays "\ud800"

    with pytest.raises(error):
        verify(setup, forge(setup, kb_payload=payload))


# Ed25519's identity point (y = 1): a small-order public key. With it, R = identity and
# S = 0 satisfy the cofactorless check [S]B = R + [h]A for every message (RFC 8032
# section 5.1.7 does not exclude such keys; libsodium and the Zcash/ZIP-215 rules do).
_SMALL_ORDER_JWK = {"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x01" + bytes(31))}


def test_issuing_to_a_small_order_ed25519_holder_key_is_refused() -> None:
    setup = make_setup("EdDSA")

    with refused(P.InvalidKey, "invalid_key"):
        P.issue_attestation(
            standard_claims(),
            issuer_key=setup.issuer_key,
            kid=setup.kid,
            holder_jwk=_SMALL_ORDER_JWK,
            now=NOW,
        )


def test_kb_jwt_forged_for_a_small_order_holder_key_is_refused() -> None:
    setup = make_setup("EdDSA")
    base = issued(setup)
    base.payload["cnf"] = {"jwk": _SMALL_ORDER_JWK}
    forged_signature = b"\x01" + bytes(31) + bytes(32)
    presentation = forge(
        setup,
        payload=base.payload,
        holder_key=ed_key(74),  # only its alg is used: the signature is the forged one
        kb_signature=forged_signature,
    )

    with pytest.raises(P.ProtocolError):
        verify(setup, presentation)


@pytest.mark.parametrize("sd", [5, [["AAAA"]]], ids=["number", "list-in-array"])
def test_present_on_an_attestation_with_a_malformed_sd_raises_a_protocol_error(
    setup: Setup, sd: Any
) -> None:
    base = issued(setup)
    base.payload["_sd"] = sd
    attestation = compact(issuer_header(setup), base.payload, setup.issuer_key) + "~"

    with pytest.raises(P.ProtocolError):
        P.present(
            attestation,
            disclose=("band",),
            holder_key=setup.holder_key,
            aud=VERIFIER,
            nonce=NONCE,
            now=KB_IAT,
        )
