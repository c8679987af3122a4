"""Following the alliance registry (issue 5; DESIGN section 7, docs/PROTOCOL.md section 7).

A node pins the alliance root public key and holds the registry versions it has
accepted. It takes a fetched version only if it verifies against the pinned key, is
newer than the newest one held and continues its chain (``protocol.verify_registry``,
with the versions in between fetched when some were skipped). Versions whose
``valid_from`` lies ahead are kept and take effect when their time comes. A failed
fetch changes nothing: the node keeps the last good registry and says how stale it is.

Accepted versions are written to ``<data_dir>/registry/v<N>.jwt`` so that a restart
resumes from them; on start they are verified again from the first held version on.

A node that fetches stops trusting what it holds once no fetch has succeeded for
``CCX_REGISTRY_MAX_STALENESS`` seconds (:meth:`RegistryFollower.stale_reason`; issue 17,
docs/SECURITY.md section 6): a blocked alliance host freezes the registry for that long,
not until the last version's ``exp``. The time of the last good fetch is saved beside the
versions (``last-fetch``), so a restart (or a crash loop) does not reset that clock.

The follower is I/O only at its edges (``refresh`` fetches with an ``httpx.Client``
passed in, ``save``/``load`` touch the folder); the rules are ``accept`` and
``in_effect``, driven by the clock passed in.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import protocol as P
from cli import write_atomically
from node.settings import Settings

__all__ = [
    "FETCH_DEADLINE",
    "REGISTRY_MEDIA_TYPE",
    "FetchRefused",
    "FetchResult",
    "Fetched",
    "RegistryFollower",
    "fetch_alliance_text",
    "follower_for",
    "version_url",
]

log = logging.getLogger("ccx.node")

REGISTRY_MEDIA_TYPE = "application/alliance-registry+jwt"
MAX_REGISTRY_BYTES = 1024 * 1024
MAX_INTERMEDIATES = 64  # versions fetched one by one to bridge a gap
FETCH_TIMEOUT = httpx.Timeout(5.0, connect=2.0)  # per connect / read of one chunk
FETCH_DEADLINE = 10.0  # seconds one GET may take in all: a trickling host can't hold more
LAST_FETCH_FILE = "last-fetch"


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
    # issue 17: seconds without a good fetch after which nothing held is trusted (None:
    # no limit, a node that doesn't fetch); counted from ``started`` before a first one
    max_staleness: int | None = None
    started: int | None = None
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

    def stale_reason(self, now: int) -> str | None:
        """Why the held versions may no longer be trusted at ``now`` (None while they may):
        no fetch has succeeded for more than ``max_staleness`` seconds, counted from the
        last good one (saved across restarts), else from ``started``. A follower without
        ``max_staleness`` (a node that fetches nothing) is never stale."""
        if self.max_staleness is None:
            return None
        since = self.last_success if self.last_success is not None else self.started
        if since is None or now - since <= self.max_staleness:
            return None
        what = (
            "no registry fetch has succeeded"
            if self.last_success is not None
            else ("no registry fetch has succeeded since this node started")
        )
        error = f" (last error: {self.last_error[0]})" if self.last_error else ""
        return (
            f"{what} for {now - since} s, more than CCX_REGISTRY_MAX_STALENESS "
            f"({self.max_staleness} s){error}: a suspension published meanwhile might "
            "be missed"
        )

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
        # none saved yet (or unreadable): staleness is counted from the start
        with contextlib.suppress(OSError, ValueError):
            self.last_success = int((self.folder / LAST_FETCH_FILE).read_text("ascii"))
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
            fetched = fetch_alliance_text(
                client, url, headers={"If-None-Match": self.etag} if self.etag else None
            )
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
                    fetch_alliance_text(client, version_url(url, n)).text
                    for n in range(first_missing, peek.version)
                ]
            else:  # a first fetch: back to the version in effect now, if this one is ahead
                intermediates, oldest = [], peek
                while oldest.valid_from > now and oldest.version > 1:
                    if len(intermediates) >= MAX_INTERMEDIATES:
                        raise P.RegistryChainBroken("no version in effect within reach")
                    older = fetch_alliance_text(client, version_url(url, oldest.version - 1)).text
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
        except FetchRefused as exc:
            return self._failed("registry_unreachable", str(exc))

    def _succeeded(self, now: int, result: FetchResult) -> FetchResult:
        self.last_success, self.last_error = now, None
        if self.folder is not None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                write_atomically(self.folder / LAST_FETCH_FILE, str(now).encode("ascii"))
            except OSError as exc:  # the fetch still counts in this process
                log.warning("registry fetch time not saved: %s", exc)
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


class FetchRefused(Exception):
    """What one alliance fetch answered, refused: a status other than 200 (or 304 when
    asked), a content coding, too many bytes, too slow, not ASCII. The message says which."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One alliance fetch's answer: 200 and the text, or 304 (to a conditional GET)."""

    status: int
    text: str
    etag: str | None


def fetch_alliance_text(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int = MAX_REGISTRY_BYTES,
    headers: dict[str, str] | None = None,
) -> Fetched:
    """GET ``url`` from the alliance host (a registry version, a mapping table): no
    redirect, no content coding (a small answer can't be inflated), at most ``max_bytes``
    (a hostile host can't make the node hold more), within ``FETCH_DEADLINE`` seconds in
    all (a host trickling a byte at a time can't hold the thread longer), as ASCII text.
    Raises :class:`FetchRefused`, or ``httpx.HTTPError`` for the network's failures."""
    started = time.monotonic()
    with client.stream(
        "GET",
        url,
        headers={"Accept-Encoding": "identity", **(headers or {})},
        timeout=FETCH_TIMEOUT,
        follow_redirects=False,
    ) as response:
        if response.status_code == 304 and headers and "If-None-Match" in headers:
            return Fetched(304, "", response.headers.get("ETag"))
        if response.status_code != 200:
            raise FetchRefused(f"{url} answered {response.status_code}")
        coding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if coding != "identity":
            raise FetchRefused(f"{url} sent a {coding!r} body unasked")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchRefused(f"{url} is larger than {max_bytes} bytes")
        body = bytearray()
        for chunk in response.iter_bytes():  # identity only: checked above
            body += chunk
            if len(body) > max_bytes:
                raise FetchRefused(f"{url} is larger than {max_bytes} bytes")
            if time.monotonic() - started > FETCH_DEADLINE:
                raise FetchRefused(f"{url} took over {FETCH_DEADLINE} s to answer")
        try:
            text = body.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise FetchRefused(f"{url} sent non-ASCII bytes, not a compact JWS") from exc
        return Fetched(200, text, response.headers.get("ETag"))


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
    follower = RegistryFollower(
        root_key=root_key,
        folder=settings.data_dir / "registry",
        # a node that fetches nothing (its registry placed by hand) has no staleness
        max_staleness=settings.registry_max_staleness if settings.registry_url else None,
        started=now,
    )
    follower.load(now=now)
    return follower
