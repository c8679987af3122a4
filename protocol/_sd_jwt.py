"""SD-JWT (RFC 9901): disclosures, issuance, presentation with Key Binding, verification.

This module is generic: it knows nothing of credit scores. ``_attestation`` builds the
CCX credit-standing attestation (an SD-JWT VC) on top of it, and the interoperability
tests run the RFC's own examples through it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

from cryptography import x509

from ._errors import (
    AudienceMismatch,
    AudienceNotString,
    ClaimNameCollision,
    DisclosureNotFound,
    DuplicateDigest,
    DuplicateDisclosure,
    DuplicateJsonKey,
    ForbiddenClaimName,
    ForbiddenHeader,
    InvalidClaim,
    IssuedInFuture,
    KeyBindingIatOutOfWindow,
    KeyBindingInvalidSignature,
    KeyBindingMissing,
    MalformedDisclosure,
    MalformedToken,
    MissingClaim,
    NonceMismatch,
    ProtectedClaimDisclosed,
    ProtocolError,
    RecipientNotNamed,
    SdHashMismatch,
    TokenExpired,
    TokenNotYetValid,
    TokenTooLarge,
    UnknownKid,
    UnreferencedDisclosure,
    UnsupportedSdAlg,
)
from ._json import b64url_decode, b64url_encode, strict_json_loads
from ._jwk import PrivateKey, PublicKey, alg_for_key, public_jwk, public_key_from_jwk
from ._jws import (
    VerifiedSignatures,
    check_header,
    decode_jws,
    sign_jws,
    verify_jws_signature,
)

__all__ = [
    "KB_JWT_TYP",
    "MIN_SALT_BYTES",
    "IssuerKeyResolver",
    "SaltSource",
    "SdJwtBuilder",
    "VerifiedSdJwt",
    "check_recipient",
    "disclosure_digest",
    "encode_disclosure",
    "present_sd_jwt",
    "sign_sd_jwt",
    "verify_sd_jwt",
]

KB_JWT_TYP = "kb+jwt"
SD_ALG = "sha-256"
MIN_SALT_BYTES = 16  # RFC 9901 section 9.3 recommends 128 bits of entropy
MAX_DISCLOSURES = 64
MAX_DEPTH = 32  # nesting of objects and arrays in a payload; ours uses 4

SaltSource: TypeAlias = Callable[[int], bytes]
"""Returns that many random bytes (``secrets.token_bytes`` in production)."""

IssuerKeyResolver: TypeAlias = Callable[[str, "str | None", str], PublicKey]
"""``resolve_issuer_key(iss, kid, alg)``: the trusted key, or raise a ProtocolError."""


def disclosure_digest(disclosure: str) -> str:
    """base64url(SHA-256(ASCII of the disclosure)), RFC 9901 section 4.2.3."""
    return b64url_encode(hashlib.sha256(disclosure.encode("ascii")).digest())


def encode_disclosure(salt: str, name: str | None, value: Any) -> str:
    """base64url of the JSON array [salt, name, value], or [salt, value] for array elements."""
    items = [salt, value] if name is None else [salt, name, value]
    return b64url_encode(
        json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    )


class SdJwtBuilder:
    """Builds the ``_sd`` structure of a payload and collects its disclosures.

    Salts and decoys come from the ``salt`` source given by the caller, so that issuance
    is reproducible in tests. ``_sd`` arrays are sorted so their order reveals nothing
    (RFC 9901 section 4.2.4.1).
    """

    def __init__(self, salt: SaltSource, *, decoys: int) -> None:
        if decoys < 0:
            raise ValueError("decoys must be >= 0")
        self._salt = salt
        self._decoys = decoys
        self.disclosures: list[str] = []

    def _fresh_salt(self) -> str:
        raw = self._salt(MIN_SALT_BYTES)
        if not isinstance(raw, bytes) or len(raw) < MIN_SALT_BYTES:
            raise ValueError(f"salt source must return at least {MIN_SALT_BYTES} bytes")
        return b64url_encode(raw)

    def object(self, visible: Mapping[str, Any], disclosable: Mapping[str, Any]) -> dict[str, Any]:
        """An object whose ``visible`` members are plain and ``disclosable`` ones each hidden."""
        clash = set(visible).intersection(disclosable)
        if clash:
            raise ValueError(f"claims both visible and disclosable: {sorted(clash)}")
        digests = []
        for name, value in disclosable.items():
            if name in ("_sd", "..."):
                raise ValueError(f"claim name {name!r} is reserved")
            disclosure = encode_disclosure(self._fresh_salt(), name, value)
            self.disclosures.append(disclosure)
            digests.append(disclosure_digest(disclosure))
        for _ in range(self._decoys):
            # RFC 9901 section 4.2.5: a decoy is the digest of a random value.
            digests.append(b64url_encode(hashlib.sha256(self._salt(MIN_SALT_BYTES)).digest()))
        out = dict(visible)
        if digests:
            out["_sd"] = sorted(digests)
        return out


def sign_sd_jwt(
    payload: Mapping[str, Any],
    disclosures: Iterable[str],
    *,
    issuer_key: PrivateKey,
    typ: str,
    kid: str | None,
    x5c: Sequence[bytes] = (),
) -> str:
    """Sign the issuer JWT and append the disclosures: ``<jwt>~<d1>~...~<dn>~``. ``x5c``
    (DER, leaf first) goes into the header as standard base64 (RFC 7515 section 4.1.6)."""
    header: dict[str, Any] = {"typ": typ}
    if kid is not None:
        header["kid"] = kid
    if x5c:
        header["x5c"] = [base64.b64encode(der).decode("ascii") for der in x5c]
    payload_json = json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )
    jwt = sign_jws(header, payload_json, issuer_key)
    return "~".join([jwt, *disclosures, ""])


# --- presentation --------------------------------------------------------------------


class _Disclosure(NamedTuple):  # a NamedTuple: built once per disclosure, on the hot path
    text: str
    digest: str
    salt: str
    name: str | None
    value: Any


def _parse_disclosure(text: str) -> _Disclosure:
    if not text:
        raise MalformedDisclosure("empty disclosure between two '~'")
    try:
        raw = b64url_decode(text, what="disclosure")
        items = strict_json_loads(raw, what="disclosure")
    except DuplicateJsonKey:
        raise
    except ProtocolError as exc:
        raise MalformedDisclosure(f"disclosure is not base64url JSON: {exc.message}") from exc
    if not isinstance(items, list) or len(items) not in (2, 3) or not isinstance(items[0], str):
        raise MalformedDisclosure("disclosure must be [salt, name, value] or [salt, value]")
    name = None
    if len(items) == 3:
        name = items[1]
        if not isinstance(name, str):
            raise MalformedDisclosure("disclosure claim name is not a string")
        if name in ("_sd", "..."):
            raise ForbiddenClaimName(f"disclosure names the reserved claim {name!r}")
    return _Disclosure(text, disclosure_digest(text), items[0], name, items[-1])


def _split(compact: str, *, max_size: int) -> tuple[str, list[str], str]:
    if not isinstance(compact, str):
        raise MalformedToken("SD-JWT is not a string")
    if len(compact) > max_size:
        raise TokenTooLarge(f"SD-JWT is {len(compact)} characters; the limit is {max_size}")
    if not compact.isascii():
        raise MalformedToken("SD-JWT contains non-ASCII characters")
    parts = compact.split("~")
    if len(parts) < 2:
        raise MalformedToken("SD-JWT must contain at least one '~'")
    if len(parts) - 2 > MAX_DISCLOSURES:
        raise TokenTooLarge(f"SD-JWT carries more than {MAX_DISCLOSURES} disclosures")
    return parts[0], parts[1:-1], parts[-1]


def _paths(
    payload: Mapping[str, Any], by_digest: Mapping[str, _Disclosure]
) -> dict[str, list[str]]:
    """Map each disclosable claim path ("a", "a.b") to the disclosures it needs."""
    found: dict[str, list[str]] = {}

    def walk(obj: Any, prefix: str, needed: list[str]) -> None:
        if isinstance(obj, dict):
            for digest in obj.get("_sd", ()):
                disclosure = by_digest.get(digest)
                if disclosure is None or disclosure.name is None:
                    continue  # a decoy
                path = f"{prefix}{disclosure.name}"
                chain = [*needed, disclosure.text]
                found[path] = chain
                walk(disclosure.value, f"{path}.", chain)
            for name, value in obj.items():
                if name != "_sd":
                    walk(value, f"{prefix}{name}.", needed)

    walk(payload, "", [])
    return found


def check_recipient(sd_jwt: str, recipient: str, *, max_size: int = 65536) -> None:
    """A holder's check before presenting: the issuer JWT's ``aud``, when present, must
    name ``recipient`` (the verifier's id as the issuer would name it), as that verifier
    will require. The signature is not checked: the holder's own token, to be verified
    by the verifier. Pure.

    Raises :class:`RecipientNotNamed`, or a :class:`ProtocolError` for a token that
    doesn't parse (``aud`` of the wrong shape: :class:`InvalidClaim`).
    """
    issuer_jwt = _split(sd_jwt, max_size=max_size)[0]
    _check_audience(decode_jws(issuer_jwt, what="issuer JWT", max_size=max_size).payload, recipient)


def present_sd_jwt(
    sd_jwt: str,
    *,
    disclose: Collection[str],
    holder_key: PrivateKey,
    aud: str,
    nonce: str,
    now: int,
    max_size: int = 65536,
    recipient: str | None = None,
) -> str:
    """Keep only the disclosures for the ``disclose`` paths and append a KB-JWT.

    ``recipient``, when given, is the verifier's id as the issuer JWT's ``aud`` would
    name it: a token whose ``aud`` names others is not presented at all (the holder's
    side of RFC 7519 section 4.1.3: a verifier that will refuse it learns nothing).

    Raises :class:`DisclosureNotFound` for a path the SD-JWT cannot disclose,
    :class:`RecipientNotNamed` for a ``recipient`` its ``aud`` doesn't name.
    """
    issuer_jwt, texts, kb = _split(sd_jwt, max_size=max_size)
    if kb:
        raise MalformedToken("this SD-JWT is already a presentation (it ends with a KB-JWT)")
    payload = decode_jws(issuer_jwt, what="issuer JWT", max_size=max_size).payload
    if recipient is not None:
        _check_audience(payload, recipient)
    # The same structural checks a verifier runs (digest types, duplicates, depth), so
    # that a malformed attestation fails here with a ProtocolError, not later. The
    # unpacker works in place, so it gets its own parse.
    _Unpacker([_parse_disclosure(text) for text in texts], ()).object(
        decode_jws(issuer_jwt, what="issuer JWT", max_size=max_size).payload, top=True, path=""
    )
    disclosures = [_parse_disclosure(text) for text in texts]
    paths = _paths(payload, {d.digest: d for d in disclosures})
    chosen: list[str] = []
    for path in disclose:
        if path not in paths:
            raise DisclosureNotFound(f"no disclosable claim at {path!r}; have {sorted(paths)}")
        chosen.extend(text for text in paths[path] if text not in chosen)
    # Keep the issuer's order of disclosures; nothing in it depends on which were chosen.
    kept = [text for text in texts if text in chosen]
    prefix = "~".join([issuer_jwt, *kept, ""])
    kb_payload = {
        "iat": now,
        "aud": aud,
        "nonce": nonce,
        "sd_hash": b64url_encode(hashlib.sha256(prefix.encode("ascii")).digest()),
    }
    alg_for_key(holder_key)
    kb_jwt = sign_jws(
        {"typ": KB_JWT_TYP},
        json.dumps(kb_payload, separators=(",", ":")).encode("utf-8"),
        holder_key,
    )
    return prefix + kb_jwt


# --- verification --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedSdJwt:
    """The outcome of :func:`verify_sd_jwt`: header, processed payload, disclosed names."""

    header: Mapping[str, Any]
    claims: dict[str, Any]
    disclosed: frozenset[str] = field(default_factory=frozenset)
    kb_claims: dict[str, Any] = field(default_factory=dict)


def _int_claim(claims: Mapping[str, Any], name: str, *, required: bool, what: str) -> int | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise MissingClaim(f"{what} lacks the {name!r} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidClaim(f"{what} claim {name!r} must be a finite NumericDate")
    return int(value)


def _check_times(
    claims: Mapping[str, Any], *, now: int, leeway: int, required: Collection[str]
) -> None:
    what = "issuer JWT"
    exp = _int_claim(claims, "exp", required="exp" in required, what=what)
    nbf = _int_claim(claims, "nbf", required="nbf" in required, what=what)
    iat = _int_claim(claims, "iat", required="iat" in required, what=what)
    if exp is not None and now > exp + leeway:
        raise TokenExpired(f"attestation expired at {exp}; now is {now}")
    if nbf is not None and now + leeway < nbf:
        raise TokenNotYetValid(f"attestation is not valid before {nbf}; now is {now}")
    if iat is not None and now + leeway < iat:
        raise IssuedInFuture(f"attestation claims to be issued at {iat}, after now ({now})")


def _check_audience(claims: Mapping[str, Any], verifier: str) -> None:
    """The issuer-signed ``aud``, when present, must name this verifier (RFC 7519 section
    4.1.3: a JWT whose ``aud`` does not identify the party processing it is rejected).

    ``aud`` is one string or a non-empty array of strings (``InvalidClaim`` otherwise);
    names compare as exact strings. No ``aud``: the token names no recipients.
    """
    if "aud" not in claims:
        return
    audience = claims["aud"]
    names = [audience] if isinstance(audience, str) else audience
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(name, str) and name for name in names)
    ):
        raise InvalidClaim("issuer JWT aud must be a string or a non-empty array of strings")
    if verifier not in names:
        shown = ", ".join(repr(name[:200]) for name in names[:4])
        more = f" and {len(names) - 4} more" if len(names) > 4 else ""
        raise RecipientNotNamed(
            f"the attestation is for {shown}{more} only, not for this verifier {verifier!r}"
        )


_ABSENT = object()


class _Unpacker:
    """Replaces digests by disclosed claims, enforcing RFC 9901 section 7.1 step 3."""

    def __init__(self, disclosures: list[_Disclosure], never_disclosed: Collection[str]) -> None:
        self.by_digest: dict[str, _Disclosure] = {}
        for disclosure in disclosures:
            if disclosure.digest in self.by_digest:
                raise DuplicateDisclosure("the same disclosure is presented twice")
            self.by_digest[disclosure.digest] = disclosure
        self.seen: set[str] = set()
        self.used: set[str] = set()
        self.never_disclosed = never_disclosed
        self.disclosed: set[str] = set()

    def _note(self, digests: list[Any]) -> list[_Disclosure]:
        """Record one ``_sd`` array (or one array digest); return its disclosures, in order.

        Set operations instead of a per-digest loop: this runs on every object of every
        presentation, and most digests are undisclosed or decoys.
        """
        if not all(type(d) is str for d in digests):
            raise MalformedToken("a digest in the payload is not a string")
        unique = set(digests)
        if len(unique) != len(digests) or not self.seen.isdisjoint(unique):
            raise DuplicateDigest("a digest appears more than once in the SD-JWT")
        self.seen |= unique
        hits = unique & self.by_digest.keys()
        if not hits:
            return []
        self.used |= hits
        return [self.by_digest[d] for d in digests if d in hits]

    def unpack(self, value: Any, path: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise MalformedToken(f"the payload nests deeper than {MAX_DEPTH} levels")
        if type(value) is dict:
            return self.object(value, top=False, path=path, depth=depth)
        if type(value) is list:
            return self._array(value, path=path, depth=depth)
        return value

    def object(
        self, obj: dict[str, Any], *, top: bool, path: str, depth: int = 0
    ) -> dict[str, Any]:
        """Process one object *in place* (it is freshly parsed and ours): drop ``_sd`` and
        ``_sd_alg``, recurse into containers, insert the disclosed claims.

        This runs for every object of every presentation, so scalars are left where they
        are and paths are built only where a container is entered.
        """
        digests = obj.pop("_sd", _ABSENT)
        if "_sd_alg" in obj:
            if not top:
                raise InvalidClaim("_sd_alg may appear only at the top level")
            del obj["_sd_alg"]
        for name, value in obj.items():
            kind = type(value)
            if kind is dict or kind is list:
                obj[name] = self.unpack(value, f"{path}{name}.", depth + 1)
        if digests is _ABSENT:
            return obj
        if type(digests) is not list:
            raise MalformedToken("_sd is not an array")
        for disclosure in self._note(digests) if digests else ():
            if disclosure.name is None:
                raise MalformedDisclosure(
                    "an array-element disclosure is referenced from an object"
                )
            if disclosure.name in obj:
                raise ClaimNameCollision(f"disclosed claim {disclosure.name!r} already exists")
            if top and disclosure.name in self.never_disclosed:
                raise ProtectedClaimDisclosed(
                    f"claim {disclosure.name!r} must never be selectively disclosed"
                )
            full = f"{path}{disclosure.name}"
            self.disclosed.add(full)
            obj[disclosure.name] = self.unpack(disclosure.value, f"{full}.", depth + 1)
        return obj

    def _array(self, array: list[Any], *, path: str, depth: int) -> list[Any]:
        out = []
        for element in array:
            if type(element) is dict and "..." in element:
                if len(element) != 1:
                    raise MalformedToken(
                        "an array-element digest object must have only the '...' member"
                    )
                found = self._note([element["..."]])
                if not found:
                    continue
                disclosure = found[0]
                if disclosure.name is not None:
                    raise MalformedDisclosure(
                        "an object-property disclosure is referenced from an array"
                    )
                out.append(self.unpack(disclosure.value, path, depth + 1))
            else:
                out.append(self.unpack(element, path, depth + 1))
        return out


def _same(received: str, expected: str) -> bool:
    # Constant-time, and safe for any str the holder sends (a lone surrogate included).
    return hmac.compare_digest(
        received.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _verify_key_binding(
    kb_jwt: str,
    prefix: str,
    cnf: Any,
    *,
    aud: str,
    nonce: str,
    now: int,
    leeway: int,
    kb_max_age: int,
    allowed_algs: Collection[str],
    max_size: int,
) -> dict[str, Any]:
    what = "KB-JWT"
    if not kb_jwt:
        raise KeyBindingMissing("the presentation carries no Key Binding JWT")
    if not isinstance(cnf, dict) or not isinstance(cnf.get("jwk"), dict):
        raise MissingClaim("the attestation has no cnf.jwk holder key")
    holder_key = public_key_from_jwk(cnf["jwk"])
    kb = decode_jws(kb_jwt, what=what, max_size=max_size)
    alg = check_header(
        kb.header, typ=KB_JWT_TYP, allowed_algs=allowed_algs, what=what, require_kid=False
    )
    verify_jws_signature(
        alg, holder_key, kb.signing_input, kb.signature, what=what, error=KeyBindingInvalidSignature
    )
    payload = kb.payload
    iat = _int_claim(payload, "iat", required=True, what=what)
    assert iat is not None
    if iat > now + leeway or iat < now - kb_max_age - leeway:
        raise KeyBindingIatOutOfWindow(f"KB-JWT iat {iat} is outside [{now - kb_max_age}, {now}]")
    kb_aud = payload.get("aud")
    if not isinstance(kb_aud, str):
        raise AudienceNotString("KB-JWT aud must be a single string")
    if kb_aud != aud:
        raise AudienceMismatch(f"KB-JWT is for {kb_aud!r}, not for this verifier {aud!r}")
    kb_nonce = payload.get("nonce")
    if not isinstance(kb_nonce, str):
        raise MissingClaim("KB-JWT lacks a string nonce")
    if not _same(kb_nonce, nonce):
        raise NonceMismatch("KB-JWT nonce is not this verifier's current challenge (replayed?)")
    sd_hash = payload.get("sd_hash")
    if not isinstance(sd_hash, str):
        raise MissingClaim("KB-JWT lacks sd_hash")
    expected = b64url_encode(hashlib.sha256(prefix.encode("ascii")).digest())
    if not _same(sd_hash, expected):
        raise SdHashMismatch("KB-JWT sd_hash does not cover the presented disclosures")
    return payload


def _check_x5c_is(key: PublicKey, x5c: Any) -> None:
    """An issuer JWT's ``x5c`` (HAIP 1.0 section 6.1.1) is for verifiers outside the
    alliance; ours take the key from the registry alone. The two must agree: a leaf whose
    key is not the registry's is refused, never followed (docs/PROTOCOL.md section 2)."""
    if not isinstance(x5c, list) or not x5c or not isinstance(x5c[0], str):
        raise ForbiddenHeader("issuer JWT x5c must be a non-empty array of base64 DER")
    try:
        leaf = x509.load_der_x509_certificate(base64.b64decode(x5c[0], validate=True))
        leaf_key = leaf.public_key()
    except (binascii.Error, ValueError) as exc:
        raise ForbiddenHeader("issuer JWT x5c[0] is not a DER certificate") from exc
    if public_jwk(leaf_key) != public_jwk(key):  # type: ignore[arg-type]
        raise ForbiddenHeader("issuer JWT x5c names another key than the registry's for its kid")


def verify_sd_jwt(
    presentation: str,
    *,
    typ: str,
    resolve_issuer_key: IssuerKeyResolver,
    aud: str,
    nonce: str,
    now: int,
    allowed_algs: Collection[str] = ("ES256", "EdDSA"),
    leeway: int = 30,
    kb_max_age: int = 300,
    require_kid: bool = True,
    required_claims: Collection[str] = ("iss", "iat", "exp"),
    never_disclosed: Collection[str] = (),
    check_visible: Callable[[Mapping[str, Any]], None] | None = None,
    max_size: int = 16384,
    recipient: str | None = None,
    signatures: VerifiedSignatures | None = None,
) -> VerifiedSdJwt:
    """Verify an SD-JWT+KB presentation in the order of RFC 9901 section 7 and DESIGN 5.

    ``aud`` is this verifier's id: the KB-JWT's ``aud`` must be it, and the issuer-signed
    JWT's ``aud``, when present, must name it (else :class:`RecipientNotNamed`; checked
    right after the required claims, before any disclosure is read). A verifier known by
    two names gives the second as ``recipient``: the issuer-signed ``aud`` must then name
    that one (an OpenID4VP verifier's KB-JWT ``aud`` is its client identifier, while the
    attestation names members by their ids: docs/PROTOCOL.md section 11). ``check_visible``
    validates the issuer-signed claims (a credential type's own rules) right after that,
    before any disclosure is processed. ``signatures`` remembers issuer signatures
    verified before (:class:`VerifiedSignatures`): the same issuer JWT, byte for byte,
    under the same key, is not verified twice; everything else is checked every time.
    Returns the processed claims (visible plus disclosed). Raises a :class:`ProtocolError`
    subclass for every failure; never returns a partial result.
    """
    issuer_jwt, texts, kb_jwt = _split(presentation, max_size=max_size)
    jws = decode_jws(issuer_jwt, what="issuer JWT", max_size=max_size)
    alg = check_header(
        jws.header, typ=typ, allowed_algs=allowed_algs, what="issuer JWT",
        require_kid=require_kid, allow_x5c=True,
    )  # fmt: skip
    claims = jws.payload
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise MissingClaim("issuer JWT lacks a string iss")
    try:
        key = resolve_issuer_key(iss, jws.header.get("kid"), alg)
    except ProtocolError:
        raise
    except Exception as exc:  # a resolver's own failure must never let a token through
        raise UnknownKid(f"no trusted key for issuer {iss!r}") from exc
    if "x5c" in jws.header:
        _check_x5c_is(key, jws.header["x5c"])
    if signatures is not None:
        signatures.verify(alg, key, jws.signing_input, jws.signature, what="issuer JWT")
    else:
        verify_jws_signature(alg, key, jws.signing_input, jws.signature, what="issuer JWT")
    _check_times(claims, now=now, leeway=leeway, required=required_claims)
    for name in required_claims:
        if name not in claims:
            raise MissingClaim(f"issuer JWT lacks the {name!r} claim")
    _check_audience(claims, aud if recipient is None else recipient)
    if check_visible is not None:
        check_visible(claims)
    sd_alg = claims.get("_sd_alg", SD_ALG)
    if sd_alg != SD_ALG:
        raise UnsupportedSdAlg(f"_sd_alg {sd_alg!r} is not supported; only {SD_ALG!r}")
    # The holder key must come from the issuer-signed visible claims, taken before the
    # (in-place) unpacking could add anything.
    holder_cnf = claims.get("cnf")
    # A disclosed aud would come after the audience check: refused wherever it appears.
    unpacker = _Unpacker(
        [_parse_disclosure(t) for t in texts], frozenset(never_disclosed) | {"aud"}
    )
    processed = unpacker.object(claims, top=True, path="")
    if len(unpacker.used) != len(unpacker.by_digest):
        raise UnreferencedDisclosure("a disclosure is not referenced by the signed payload")
    prefix = presentation[: len(presentation) - len(kb_jwt)]
    kb_claims = _verify_key_binding(
        kb_jwt,
        prefix,
        holder_cnf,
        aud=aud,
        nonce=nonce,
        now=now,
        leeway=leeway,
        kb_max_age=kb_max_age,
        allowed_algs=allowed_algs,
        max_size=max_size,
    )
    return VerifiedSdJwt(jws.header, processed, frozenset(unpacker.disclosed), kb_claims)
