"""Following the alliance registry (issue 5; DESIGN section 7, docs/PROTOCOL.md section 7).

A node pins the alliance root public key and holds the registry versions it has
accepted. It takes a fetched version only if it verifies against the pinned key, is
newer than the newest one held and continues its chain (``protocol.verify_registry``,
with the versions in between fetched when some were skipped). Versions whose
``valid_from`` lies ahead are kept and take effect when their time comes. A failed
fetch changes nothing: the node keeps the last good registry and says how stale it is.

Accepted versions are written to ``<data_dir>/registry/v<N>.jwt`` so that a restart
resumes from them; on start they are verified again from the first held version on.

The follower is I/O only at its edges (``refresh`` fetches with an ``httpx.Client``
passed in, ``save``/``load`` touch the folder); the rules are ``accept`` and
``in_effect``, driven by the clock passed in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import protocol as P
from cli import write_atomically
from node.settings import Settings

__all__ = [
    "REGISTRY_MEDIA_TYPE",
    "FetchResult",
    "RegistryFollower",
    "follower_for",
    "version_url",
]

log = logging.getLogger("ccx.node")

REGISTRY_MEDIA_TYPE = "application/alliance-registry+jwt"
MAX_REGISTRY_BYTES = 1024 * 1024
MAX_INTERMEDIATES = 64  # versions fetched one by one to bridge a gap


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one refresh did: ``accepted`` versions (oldest first), ``unchanged`` (304 or
    the same version), or ``error`` (a stable code and a message; nothing changed)."""

    accepted: tuple[int, ...] = ()
    unchanged: bool = False
    error: tuple[str, str] | None = None


@dataclass
class RegistryFollower:
    """The registry versions a node holds, and the rules for taking new ones."""

    root_key: P.PublicKey
    folder: Path | None = None
    versions: list[P.Registry] = field(default_factory=list)  # accepted, oldest first
    last_success: int | None = None  # when a fetch last succeeded (node clock)
    last_error: tuple[str, str] | None = None
    last_attempt: int | None = None  # when a fetch was last tried (node clock)
    etag: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- the rules ------------------------------------------------------------------

    @property
    def newest(self) -> P.Registry | None:
        return self.versions[-1] if self.versions else None

    def in_effect(self, now: int) -> P.Registry | None:
        """The newest held version that has taken effect at ``now`` (None if none has)."""
        for registry in reversed(self.versions):
            if registry.valid_from <= now:
                return registry
        return None

    def staleness(self, now: int) -> int | None:
        """Seconds since the last successful fetch (None if there never was one)."""
        return None if self.last_success is None else max(0, now - self.last_success)

    def accept(self, token: str, *, now: int, intermediates: Sequence[str] = ()) -> P.Registry:
        """Verify ``token`` against the pinned key and the newest held version (through
        ``intermediates``, oldest first, when versions were skipped) and hold it, with the
        intermediates. Raises the protocol's registry errors; holds nothing then."""
        with self._lock:
            previous = self.newest
            bridged: list[P.Registry] = []
            for older in intermediates:  # each one verified against the one before
                bridged.append(
                    P.verify_registry(
                        older,
                        root_key=self.root_key,
                        now=now,
                        previous=bridged[-1] if bridged else previous,
                        check_expiry=False,
                    )
                )
            registry = P.verify_registry(
                token,
                root_key=self.root_key,
                now=now,
                previous=bridged[-1] if bridged else previous,
            )
            for held in (*bridged, registry):
                self._save(held)
            self.versions.extend((*bridged, registry))
            return registry

    # --- at rest ---------------------------------------------------------------------

    def _save(self, registry: P.Registry) -> None:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"v{registry.version}.jwt", registry.token.encode())

    def load(self, *, now: int) -> int:
        """Take the versions saved in ``folder`` (verified again, in order, expiry not
        checked for all but the newest); returns how many were taken. A file that does
        not verify stops the load there, with a warning in the log."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        files = sorted(
            (int(path.stem[1:]), path)
            for path in self.folder.glob("v*.jwt")
            if path.stem[1:].isdigit()
        )
        taken = 0
        for version, path in files:
            try:
                registry = P.verify_registry(
                    path.read_text(encoding="ascii").strip(),
                    root_key=self.root_key,
                    now=now,
                    previous=self.newest,
                    check_expiry=False,
                )
            except (P.ProtocolError, OSError, UnicodeDecodeError) as exc:
                log.warning("registry file %s not taken: %s", path.name, exc)
                break
            if registry.version != version:
                log.warning("registry file %s holds version %s", path.name, registry.version)
                break
            self.versions.append(registry)
            taken += 1
        return taken

    # --- fetching ----------------------------------------------------------------------

    def refresh_unless_recent(
        self, client: httpx.Client, url: str, *, now: int, cooldown: int
    ) -> FetchResult | None:
        """:meth:`refresh`, unless a fetch was tried less than ``cooldown`` seconds ago
        (then None): what a verifier does on meeting a key or member it doesn't know, so
        that a flood of such presentations costs the alliance host one fetch a cooldown."""
        with self._lock:
            if self.last_attempt is not None and now - self.last_attempt < cooldown:
                return None
            self.last_attempt = now
        return self.refresh(client, url, now=now)

    def refresh(self, client: httpx.Client, url: str, *, now: int) -> FetchResult:
        """Fetch ``url`` (the registry's current version; ETag honoured) and take it if
        it is new and verifies, fetching ``<url>/versions/<n>`` for any skipped versions.
        Never raises for a network or protocol failure: the result says what happened
        and the held versions stay as they were."""
        self.last_attempt = now
        try:
            fetched = _get(client, url, {"If-None-Match": self.etag} if self.etag else None)
            if fetched.status == 304:
                return self._succeeded(now, FetchResult(unchanged=True))
            token = fetched.text
            peek = P.verify_registry(
                token, root_key=self.root_key, now=now, check_expiry=False
            )  # signature and shape only: the chain is checked in accept()
            newest = self.newest
            if newest is not None and peek.version == newest.version and token == newest.token:
                self.etag = fetched.etag
                return self._succeeded(now, FetchResult(unchanged=True))
            if newest is not None:  # bridge the gap from the newest held version
                first_missing = newest.version + 1
                if peek.version - first_missing > MAX_INTERMEDIATES:
                    raise P.RegistryChainBroken(
                        f"{peek.version - first_missing} versions are missing, more than "
                        f"{MAX_INTERMEDIATES} fetched to bridge a gap"
                    )
                intermediates = [
                    _get(client, version_url(url, n)).text
                    for n in range(first_missing, peek.version)
                ]
            else:  # a first fetch: back to the version in effect now, if this one is ahead
                intermediates, oldest = [], peek
                while oldest.valid_from > now and oldest.version > 1:
                    if len(intermediates) >= MAX_INTERMEDIATES:
                        raise P.RegistryChainBroken("no version in effect within reach")
                    older = _get(client, version_url(url, oldest.version - 1)).text
                    oldest = P.verify_registry(
                        older, root_key=self.root_key, now=now, check_expiry=False
                    )
                    intermediates.insert(0, older)
                first_missing = oldest.version
            self.accept(token, now=now, intermediates=intermediates)
            self.etag = fetched.etag
            accepted = tuple(range(first_missing, peek.version + 1))
            log.info("registry versions %s accepted from %s", accepted, url)
            return self._succeeded(now, FetchResult(accepted=accepted))
        except P.ProtocolError as exc:
            return self._failed(exc.code, str(exc))
        except httpx.HTTPError as exc:
            return self._failed("registry_unreachable", f"fetching {url} failed: {exc}")
        except _BadResponse as exc:
            return self._failed("registry_unreachable", str(exc))

    def _succeeded(self, now: int, result: FetchResult) -> FetchResult:
        self.last_success, self.last_error = now, None
        return result

    def _failed(self, code: str, message: str) -> FetchResult:
        self.last_error = (code, message)
        log.warning("registry fetch failed [%s]: %s", code, message)
        return FetchResult(error=(code, message))


def version_url(url: str, version: int) -> str:
    """Where version ``version`` is, next to the current one at ``url``: a static alliance
    folder has ``registry/current.jwt`` beside ``registry/v<N>.jwt``; a node serving the
    registry has ``/v1/alliance/registry`` and ``/v1/alliance/registry/versions/<N>``."""
    if url.endswith("/current.jwt"):
        return f"{url.removesuffix('current.jwt')}v{version}.jwt"
    return f"{url.rstrip('/')}/versions/{version}"


class _BadResponse(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Fetched:
    status: int
    text: str
    etag: str | None


def _get(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> _Fetched:
    """GET ``url``, reading at most ``MAX_REGISTRY_BYTES`` (a hostile host can't make the
    node hold more), as ASCII text."""
    with client.stream("GET", url, headers=headers or {}) as response:
        if response.status_code == 304:
            return _Fetched(304, "", response.headers.get("ETag"))
        if response.status_code != 200:
            raise _BadResponse(f"{url} answered {response.status_code}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_REGISTRY_BYTES:
                raise _BadResponse(
                    f"the registry at {url} is larger than {MAX_REGISTRY_BYTES} bytes"
                )
        try:
            text = body.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise _BadResponse(f"{url} sent non-ASCII bytes, not a compact JWS") from exc
        return _Fetched(200, text, response.headers.get("ETag"))


def follower_for(settings: Settings, *, now: int) -> RegistryFollower | None:
    """The node's follower, if it pins an alliance root key (``CCX_ALLIANCE_ROOT_JWK``):
    with the versions saved in ``<data_dir>/registry`` taken again. Raises ValueError
    when the setting is not a public JWK (a private one included)."""
    if not settings.alliance_root_jwk:
        return None
    text = settings.alliance_root_jwk.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"CCX_ALLIANCE_ROOT_JWK: can't read the file {text}: {exc}") from exc
    try:
        root_key = P.public_key_from_jwk(P.strict_json_loads(text.encode(), what="root JWK"))
    except P.ProtocolError as exc:
        raise ValueError(f"CCX_ALLIANCE_ROOT_JWK is not a public JWK: {exc.message}") from exc
    follower = RegistryFollower(root_key=root_key, folder=settings.data_dir / "registry")
    follower.load(now=now)
    return follower
