"""The alliance administrators' working state and the registry claims built from it.

Pure: no files, no clock, no network. ``ccx alliance`` (alliance/cli.py) reads
``alliance.json``, calls these functions with ``now`` and the inputs it has read, and
writes what they return. Every refusal is an :class:`AllianceError` naming the field to
fix. The claim shapes are documented in docs/ALLIANCE.md and docs/PROTOCOL.md section 7.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

import protocol as P
from cli import InputError
from mappings import AllianceScale, LocalScale, MappingError

__all__ = [
    "CREDENTIAL_TYPES",
    "DEFAULT_POLICY",
    "REQUIRED_SCENARIOS",
    "STATE_FORMAT",
    "AllianceError",
    "AllianceState",
    "PublishedVersion",
    "attach_table",
    "check_credentials",
    "check_http_url",
    "parse_jwks",
    "parse_local_scale",
    "parse_policy",
    "parse_scale",
    "registry_claims",
    "retained_tables",
]

STATE_FORMAT = "ccx-alliance/1"
ALGS = ("ES256", "EdDSA")
_JWK_MEMBERS = frozenset({"kty", "crv", "x", "y", "kid", "alg", "use", "nbf", "exp"})
_SCENARIO_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

# The scenario kinds every member must honour for visitors (DESIGN section 1 and 7).
REQUIRED_SCENARIOS = (
    "library_deposit_free",
    "roadside_parking_pay_later",
    "car_park_pay_later",
    "hospital_treat_first_pay_later",
    "bike_deposit_free",
    "missing_document_approval",
)
# Bounds of the policy's durations: an attestation never lives longer than
# MAX_ATTESTATION_LIFETIME, and a status list more than a week stale no longer says much.
MAX_STATUS_STALE_LIMIT = 7 * 86400

DEFAULT_POLICY: dict[str, Any] = {
    "max_attestation_age": 30 * 86400,
    "status_stale_limit": 86400,
    "scenarios": {
        "library_deposit_free": {"min_alliance_score": 600},
        "roadside_parking_pay_later": {"min_alliance_score": 550},
        "car_park_pay_later": {"min_alliance_score": 600},
        # Treatment never waits on a score; the threshold only decides paying later.
        "hospital_treat_first_pay_later": {"min_alliance_score": 550},
        "bike_deposit_free": {"min_alliance_score": 550},
        "missing_document_approval": {"min_alliance_score": 650},
    },
}


class AllianceError(InputError):
    """Bad input to an alliance command: ``code`` is stable, ``field`` names what to fix."""

    http_status: ClassVar[int] = 422


# --- checking inputs -----------------------------------------------------------------------


CREDENTIAL_TYPES = ("credit_standing", "domestic_service")  # docs/CREDENTIALS.md


def check_credentials(credentials: Sequence[str], field: str = "--credential") -> list[str]:
    """The credential types a member issues, checked: one or more of
    :data:`CREDENTIAL_TYPES`, each once, in that order."""
    unknown = [c for c in credentials if c not in CREDENTIAL_TYPES]
    if not credentials or unknown:
        raise AllianceError(
            "invalid_value",
            field,
            f"must name one or more of {', '.join(CREDENTIAL_TYPES)}"
            + (f" (not {unknown[0]!r})" if unknown else ""),
        )
    return [c for c in CREDENTIAL_TYPES if c in credentials]


def check_http_url(value: str, field: str) -> str:
    """An absolute http(s) URL without query or fragment (a node id, an alliance id, a uri)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise AllianceError("invalid_url", field, f"{value!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment or any(c.isspace() for c in value):
        raise AllianceError("invalid_url", field, f"{value!r} must not carry a query or fragment")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_jwks(data: Any, field: str) -> dict[str, list[dict[str, Any]]]:
    """A member's issuing keys as the registry carries them: ``{"keys": [...]}``.

    Each key must be a public EC P-256 or Ed25519 JWK (a private member is refused), with
    ``kid`` its RFC 7638 thumbprint, ``alg`` matching the key, optional integer ``nbf`` /
    ``exp``, and no member outside the ones a node publishes. Raises AllianceError.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise AllianceError("invalid_jwks", field, 'must be a JWKS: {"keys": [...]}')
    if set(data) != {"keys"}:
        extra = sorted(set(data) - {"keys"})[0]
        raise AllianceError("invalid_jwks", f"{field} {extra}", "is not a member of a JWKS")
    keys: list[dict[str, Any]] = []
    for index, jwk in enumerate(data["keys"]):
        where = f"{field} keys[{index}]"
        try:
            key = P.public_key_from_jwk(jwk)
            thumbprint = P.jwk_thumbprint(jwk)
        except P.ProtocolError as exc:
            raise AllianceError(exc.code, where, exc.message) from exc
        unknown = sorted(set(jwk) - _JWK_MEMBERS)
        if unknown:
            raise AllianceError("invalid_key", f"{where}.{unknown[0]}", "is not allowed in a JWK")
        if jwk.get("kid") != thumbprint:
            raise AllianceError(
                "invalid_key", f"{where}.kid", f"must be the key's RFC 7638 thumbprint {thumbprint}"
            )
        if jwk.get("alg") != P.alg_for_key(key):
            raise AllianceError(
                "invalid_key", f"{where}.alg", f"must be {P.alg_for_key(key)} for this key"
            )
        if jwk.get("use", "sig") != "sig":
            raise AllianceError("invalid_key", f"{where}.use", 'must be "sig"')
        for name in ("nbf", "exp"):
            if name in jwk and not _is_int(jwk[name]):
                raise AllianceError("invalid_key", f"{where}.{name}", "must be an integer")
        if any(k["kid"] == thumbprint for k in keys):
            raise AllianceError("invalid_key", f"{where}.kid", f"key {thumbprint} is listed twice")
        keys.append(dict(jwk))
    if not keys:
        raise AllianceError("invalid_jwks", field, "lists no key; a member needs one to sign")
    return {"keys": keys}


def parse_local_scale(data: Any, field: str) -> dict[str, Any]:
    """A member's local scale (``{name, min, max, step}`` or grades), normalised."""
    try:
        return LocalScale.from_json(data).to_json()
    except MappingError as exc:
        raise AllianceError(exc.code, f"{field} {exc.field}", _message(exc)) from exc


def parse_scale(data: Any, field: str) -> AllianceScale:
    """The alliance scale from its ``scale`` claim, or from a whole registry payload."""
    if isinstance(data, Mapping) and "scale" in data and "reference" not in data:
        data = data["scale"]
    try:
        return AllianceScale.from_json(data)
    except MappingError as exc:
        raise AllianceError(exc.code, f"{field} {exc.field}", _message(exc)) from exc


def _message(exc: MappingError) -> str:
    return str(exc).removeprefix(f"{exc.field}: ")


def parse_policy(data: Any, scale: AllianceScale, field: str = "policy") -> dict[str, Any]:
    """Check a ``policy`` claim strictly (docs/ALLIANCE.md) against the alliance ``scale``.

    Every required scenario kind must be present; a ``min_alliance_score`` must be one of
    the scale's thresholds (a presentation discloses only ``score_at_least.<threshold>``)
    or null. Raises AllianceError naming the field.
    """

    def bad(where: str, message: str) -> AllianceError:
        return AllianceError("invalid_policy", f"{field}.{where}" if where else field, message)

    if not isinstance(data, Mapping):
        raise bad("", "must be a JSON object")
    known = ("max_attestation_age", "status_stale_limit", "scenarios")
    for name in sorted(set(data) - set(known)):
        raise bad(name, f"is not a policy field (fields: {', '.join(known)})")
    for name in known:
        if name not in data:
            raise bad(name, "is required")
    age, stale = data["max_attestation_age"], data["status_stale_limit"]
    if not _is_int(age) or not 0 < age <= P.MAX_ATTESTATION_LIFETIME:
        raise bad(
            "max_attestation_age",
            f"must be whole seconds in 1..{P.MAX_ATTESTATION_LIFETIME} (the longest an "
            "attestation lives)",
        )
    if not _is_int(stale) or not 0 <= stale <= MAX_STATUS_STALE_LIMIT:
        raise bad("status_stale_limit", f"must be whole seconds in 0..{MAX_STATUS_STALE_LIMIT}")
    scenarios = data["scenarios"]
    if not isinstance(scenarios, Mapping):
        raise bad("scenarios", "must be an object {kind: {min_alliance_score}}")
    for kind in REQUIRED_SCENARIOS:
        if kind not in scenarios:
            raise bad(f"scenarios.{kind}", "is required: every member honours it for visitors")
    checked: dict[str, Any] = {}
    for kind, rule in scenarios.items():
        where = f"scenarios.{kind}"
        if not _SCENARIO_NAME.fullmatch(kind):
            raise bad(where, "a scenario kind is lower_snake_case, at most 64 characters")
        if not isinstance(rule, Mapping):
            raise bad(where, "must be an object {min_alliance_score}")
        for name in sorted(set(rule) - {"min_alliance_score"}):
            raise bad(f"{where}.{name}", "is not a scenario field (fields: min_alliance_score)")
        if "min_alliance_score" not in rule:
            raise bad(f"{where}.min_alliance_score", "is required (an integer or null)")
        minimum = rule["min_alliance_score"]
        if minimum is not None and (not _is_int(minimum) or minimum not in scale.thresholds):
            allowed = ", ".join(str(t) for t in scale.thresholds)
            raise bad(
                f"{where}.min_alliance_score",
                f"must be null or one of the alliance scale's thresholds ({allowed})",
            )
        checked[kind] = {"min_alliance_score": minimum}
    return {"max_attestation_age": age, "status_stale_limit": stale, "scenarios": checked}


# --- the state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedVersion:
    """One registry version written to ``registry/v{version}.jwt``."""

    version: int
    sha256: str
    issued_at: int
    valid_from: int
    expires_at: int
    content_sha256: str  # of the content claims: does the working state still match?

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "iat": self.issued_at,
            "valid_from": self.valid_from,
            "exp": self.expires_at,
            "content_sha256": self.content_sha256,
        }


@dataclass(frozen=True)
class AllianceState:
    """What ``alliance.json`` holds: the working registry content and what was published.

    ``policy`` None means the default policy (:data:`DEFAULT_POLICY`).
    """

    id: str
    root_kid: str
    scale: Mapping[str, Any]
    members: Sequence[Mapping[str, Any]] = ()
    mapping_tables: Sequence[Mapping[str, Any]] = ()
    policy: Mapping[str, Any] | None = None
    published: Sequence[PublishedVersion] = field(default=())
    # the verifier CA and its leaves by kid (alliance/certificates.py): base64 DER
    certificates: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alliance_scale(self) -> AllianceScale:
        return parse_scale(self.scale, "alliance.json scale")

    @property
    def effective_policy(self) -> dict[str, Any]:
        return dict(self.policy if self.policy is not None else DEFAULT_POLICY)

    @property
    def last(self) -> PublishedVersion | None:
        return self.published[-1] if self.published else None

    def member(self, member_id: str, field: str = "--member-id") -> Mapping[str, Any]:
        for member in self.members:
            if member["id"] == member_id:
                return member
        raise AllianceError("unknown_member", field, f"{member_id!r} is not a member")

    def content(self) -> dict[str, Any]:
        """The registry claims this state stands for, before version, dates and chain:
        with certificates (alliance/certificates.py), the CA as ``verifier_ca`` and each
        member's leaves by kid as its ``certificates``."""
        content: dict[str, Any] = {
            "iss": self.id,
            "members": [self._member_content(m) for m in self.members],
            "scale": dict(self.scale),
            "mapping_tables": [dict(t) for t in self.mapping_tables],
            "policy": self.effective_policy,
        }
        if self.certificates.get("ca"):
            content["verifier_ca"] = self.certificates["ca"]
        return content

    def _member_content(self, member: Mapping[str, Any]) -> dict[str, Any]:
        leaves = self.certificates.get("members", {})
        mine = {k["kid"]: leaves[k["kid"]] for k in member["jwks"]["keys"] if k["kid"] in leaves}
        return {**member, "certificates": mine} if mine else dict(member)

    def content_sha256(self) -> str:
        return hashlib.sha256(P.canonical_json(self.content())).hexdigest()

    def differs_from_published(self) -> bool:
        last = self.last
        return last is None or last.content_sha256 != self.content_sha256()

    # --- changes: each returns a new state ---------------------------------------------

    def admit(
        self,
        *,
        member_id: str,
        name: str,
        city: str,
        jwks: Mapping[str, Any],
        local_scale: Mapping[str, Any] | None,
        credentials: Sequence[str] = (),
    ) -> AllianceState:
        """Add an active member. Refuses a second member with the same id or city, and a
        key already listed by another member. ``credentials``: the credential types it
        issues (:func:`check_credentials`); none given: the registry lists none for it,
        which verifiers read as the credit standing alone."""
        check_http_url(member_id, "--member-id")
        for value, option in ((name, "--name"), (city, "--city")):
            if not value.strip():
                raise AllianceError("invalid_value", option, "must not be empty")
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", city):
            raise AllianceError(
                "invalid_value", "--city", "a city id is lower case: letters, digits, - and _"
            )
        for member in self.members:
            if member["id"] == member_id:
                raise AllianceError("duplicate_member", "--member-id", f"{member_id} is a member")
            if member["city"] == city:
                raise AllianceError(
                    "duplicate_member", "--city", f"{city} is served by member {member['id']}"
                )
        self._check_keys_unshared(member_id, jwks)
        entry: dict[str, Any] = {
            "id": member_id,
            "name": name.strip(),
            "city": city,
            "status": "active",
            "jwks": dict(jwks),
            "local_scale": None if local_scale is None else dict(local_scale),
        }
        if credentials:
            entry["credentials"] = check_credentials(credentials)
        return replace(self, members=(*self.members, entry))

    def _check_keys_unshared(self, member_id: str, jwks: Mapping[str, Any]) -> None:
        for member in self.members:
            if member["id"] == member_id:
                continue
            theirs = {k["kid"] for k in member["jwks"]["keys"]}
            for key in jwks["keys"]:
                if key["kid"] in theirs:
                    raise AllianceError(
                        "duplicate_key",
                        "--jwks",
                        f"key {key['kid']} is already a key of member {member['id']}",
                    )

    def _with_member(self, member_id: str, **changes: Any) -> AllianceState:
        self.member(member_id)
        members = tuple({**m, **changes} if m["id"] == member_id else dict(m) for m in self.members)
        return replace(self, members=members)

    def set_credentials(self, member_id: str, credentials: Sequence[str]) -> AllianceState:
        """Say which credential types a member issues (issue 18): verifiers refuse any
        other type from it once a version with them is published."""
        return self._with_member(member_id, credentials=check_credentials(credentials))

    def set_status(self, member_id: str, status: str) -> AllianceState:
        """Suspend (``suspended``) or reinstate (``active``) a member."""
        if status not in ("active", "suspended"):
            raise AllianceError("invalid_value", "status", "must be active or suspended")
        return self._with_member(member_id, status=status)

    def replace_keys(
        self, member_id: str, jwks: Mapping[str, Any], *, now: int, allow_drop: bool
    ) -> AllianceState:
        """Replace a member's key set (rotation: active, next and retired keys).

        A key dropped from the set must have expired (``exp`` passed): attestations it
        signed are still out there until then (PROTOCOL section 7). ``allow_drop``
        overrides, for a key that was compromised.
        """
        old = self.member(member_id)
        self._check_keys_unshared(member_id, jwks)
        new_kids = {k["kid"] for k in jwks["keys"]}
        for key in old["jwks"]["keys"]:
            expired = _is_int(key.get("exp")) and key["exp"] < now
            if key["kid"] not in new_kids and not expired and not allow_drop:
                raise AllianceError(
                    "key_still_valid",
                    "--jwks",
                    f"drops key {key['kid']}, which has not expired: list it with its exp "
                    "until the last attestation it signed has expired, or pass --allow-drop "
                    "(a compromised key)",
                )
        return self._with_member(member_id, jwks=dict(jwks))

    def with_scale(self, scale: AllianceScale, *, drop_tables: bool) -> AllianceState:
        """Use another alliance scale. Tables built for the old one must go (``drop_tables``),
        and the policy must still fit the new scale's thresholds."""
        tables = tuple(self.mapping_tables)
        if tables and scale.to_json() != dict(self.scale):
            if not drop_tables:
                raise AllianceError(
                    "tables_for_old_scale",
                    "--file",
                    f"{len(tables)} mapping table(s) are built for the current scale; "
                    "pass --drop-tables to remove them, then attach tables for the new one",
                )
            tables = ()
        if self.policy is not None:
            parse_policy(self.policy, scale)
        else:
            parse_policy(DEFAULT_POLICY, scale, "default policy")
        return replace(self, scale=scale.to_json(), mapping_tables=tables)

    def with_policy(self, policy: Mapping[str, Any]) -> AllianceState:
        return replace(self, policy=dict(policy))

    def with_published(self, version: PublishedVersion) -> AllianceState:
        return replace(self, published=(*self.published, version))

    def with_certificates(self, certificates: Mapping[str, Any]) -> AllianceState:
        return replace(self, certificates=dict(certificates))

    # --- alliance.json -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "id": self.id,
            "root_kid": self.root_kid,
            "scale": dict(self.scale),
            "members": [dict(m) for m in self.members],
            "mapping_tables": [dict(t) for t in self.mapping_tables],
            "policy": None if self.policy is None else dict(self.policy),
            "published": [v.to_json() for v in self.published],
            "certificates": dict(self.certificates),
        }

    @classmethod
    def from_json(cls, data: Any, field: str = "alliance.json") -> AllianceState:
        """Read ``alliance.json``; raises AllianceError (code ``invalid_state``)."""

        def bad(message: str) -> AllianceError:
            return AllianceError("invalid_state", field, message)

        if not isinstance(data, Mapping) or data.get("format") != STATE_FORMAT:
            raise bad(f"is not a {STATE_FORMAT} document")
        try:
            published = tuple(
                PublishedVersion(
                    v["version"],
                    v["sha256"],
                    v["iat"],
                    v["valid_from"],
                    v["exp"],
                    v["content_sha256"],
                )
                for v in data["published"]
            )
            state = cls(
                id=data["id"],
                root_kid=data["root_kid"],
                scale=data["scale"],
                members=tuple(data["members"]),
                mapping_tables=tuple(data["mapping_tables"]),
                policy=data["policy"],
                published=published,
                certificates=data.get("certificates") or {},
            )
        except (KeyError, TypeError) as exc:
            raise bad(f"is malformed ({exc!r})") from exc
        if [v.version for v in published] != list(range(1, len(published) + 1)):
            raise bad("published versions must run 1, 2, 3, ...")
        state.alliance_scale  # noqa: B018  (checks the scale)
        for member in state.members:
            if not isinstance(member, Mapping):
                raise bad("a member is not an object")
            parse_jwks(member.get("jwks"), f"{field} member {member.get('id')!r} jwks")
        if state.policy is not None:
            parse_policy(state.policy, state.alliance_scale, f"{field} policy")
        return state


def attach_table(
    state: AllianceState, claims: Mapping[str, Any], *, uri: str, now: int
) -> tuple[AllianceState, dict[str, Any]]:
    """Add a verified mapping table's registry entry; the city's older entries stay while
    attestations made with them may be alive (:func:`retained_tables`). ``claims`` come from ``MappingTable.from_token`` checks (signature,
    alliance, scale) done by the caller. Returns the new state and the entry.
    """
    check_http_url(uri, "--uri")
    city = claims["city"]
    if not any(m["city"] == city for m in state.members):
        raise AllianceError("unknown_city", "--file", f"no member serves city {city!r}")
    if claims["valid_to"] <= now:
        raise AllianceError("table_expired", "--file", f"the {city} table's validity has ended")
    entry = {
        "city": city,
        "version": claims["version"],
        "sha256": P.mapping_table_hash(claims),
        "valid_from": claims["valid_from"],
        "valid_to": claims["valid_to"],
        "uri": uri,
    }
    for old in state.mapping_tables:
        if old["city"] == city and old["version"] >= entry["version"]:
            raise AllianceError(
                "stale_table",
                "--file",
                f"{city} already has table version {old['version']}; a replacement needs a "
                "higher version",
            )
    tables = retained_tables([*(dict(old) for old in state.mapping_tables), entry], now=now)
    return replace(state, mapping_tables=tuple(tables)), entry


def retained_tables(entries: Sequence[Mapping[str, Any]], *, now: int) -> list[dict[str, Any]]:
    """The table entries a registry keeps: every city's newest, and an older one for as
    long as attestations issued with it may be alive, i.e. until a day after the longest
    attestation life (``MAX_ATTESTATION_LIFETIME``) past the moment it stopped being used
    (its ``valid_to``, or the ``valid_from`` of the newer one, whichever came first).
    Verifiers accept an attestation only if its table is listed, so dropping the old
    entry at once would refuse every attestation made with it."""
    newest: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if entry["city"] not in newest or entry["version"] > newest[entry["city"]]["version"]:
            newest[entry["city"]] = entry
    kept = []
    for entry in entries:
        latest = newest[entry["city"]]
        if entry is not latest:
            retired_at = min(entry["valid_to"], latest["valid_from"])
            if now > retired_at + P.MAX_ATTESTATION_LIFETIME + 86400:
                continue
        kept.append(dict(entry))
    return kept


def registry_claims(
    state: AllianceState, *, version: int, prev: str | None, valid_from: int, expires_at: int
) -> dict[str, Any]:
    """The claims of the next registry version (``iat`` is set when it is signed)."""
    scale = state.alliance_scale
    policy = parse_policy(state.effective_policy, scale)
    return {
        **state.content(),
        "mapping_tables": retained_tables(state.mapping_tables, now=valid_from),
        "policy": policy,
        "version": version,
        "prev": prev,
        "valid_from": valid_from,
        "exp": expires_at,
    }
