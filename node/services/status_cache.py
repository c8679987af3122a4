"""Other cities' status lists, fetched safely and cached (issue 5; DESIGN section 6,
docs/PROTOCOL.md section 6, docs/ALLIANCE.md section 3 ``status_stale_limit``).

A node verifying a visitor's attestation reads the attestation's entry in its issuer's
status list. The rules:

- **Where from.** Only ``<member id>/v1/status-lists/<n>`` of the issuing member, an
  active member of the registry in effect. Anything else is refused before any request:
  a presentation must not make the verifier fetch a URL of its choosing (SSRF). The URL
  fetched is rebuilt from the member id and ``n``, so no two URL parsers can disagree
  about where it goes, and redirects are never followed.
- **How much.** One GET with a timeout and an overall deadline, reading at most
  ``max_token_bytes`` (the protocol's own limit on a status list token), with
  ``Accept-Encoding: identity`` so the transport can't inflate a small answer into a
  large one; the list's inflated size is limited by ``protocol.verify_status_list``.
- **Whose key.** The token is verified with the issuer's key from the registry only
  (``Registry.resolve_issuer_key``), never a key named by the token or its host.
- **How long.** A verified copy serves without a fetch for its ``ttl`` bounded to
  ``min_ttl..max_ttl`` (default 60 s..1 h: an issuer can neither make us cache for a
  year nor make every verification a request, which would also tell it when its
  attestations are being shown). A token without ``ttl`` counts as ``ttl`` 0, so
  ``min_ttl``. Never past the token's own ``exp``.
- **When the issuer is down.** After the ttl the list is fetched again. If that fails
  (network, an HTTP error, a bad signature, an expired or malformed token, an older
  list than the one held), the last good copy keeps serving for the registry policy's
  ``status_stale_limit`` seconds past the end of its ttl (docs/ALLIANCE.md: "after it
  should have been refreshed"), and never past its ``exp``. A policy without the field,
  or with a value that is not whole seconds in 0..7 days, counts as 0: fail closed at
  once. Once no copy may serve, the node fails closed: 503 ``status_unavailable``,
  saying since when the issuer has been unreachable and what the limit is. A failed
  fetch is not retried for ``retry_after`` seconds, so a down issuer costs one timeout
  per uri per ``retry_after``, not one per verification.
- **Rollback.** A valid list issued before the one held (lower ``iat``) never replaces
  it: it would undo revocations. It counts as a failed fetch (``status_list_rollback``).
- **Memory.** At most ``max_entries`` lists (least recently used evicted first).
- **Threads.** The node runs sync routes in a thread pool: one lock guards the table,
  and a lock per uri makes concurrent verifications of the same list wait for one fetch.

The rules are pure (:func:`allowed_status_uri`, :func:`status_stale_limit`, the
``_CachedList`` windows); the I/O is one GET with the ``httpx.Client`` passed in.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

import protocol as P
from alliance.state import MAX_STATUS_STALE_LIMIT
from node.errors import NodeError

__all__ = [
    "MAX_STATUS_LIST_BYTES",
    "MAX_TTL",
    "MIN_TTL",
    "StatusCacheStats",
    "StatusListCache",
    "allowed_status_uri",
    "status_stale_limit",
]

log = logging.getLogger("ccx.node")

STATUS_LIST_PATH = "/v1/status-lists/"  # docs/PROTOCOL.md section 6
STATUS_LIST_MEDIA_TYPE = "application/statuslist+jwt"  # draft-ietf-oauth-status-list 8.1
# The protocol's own limit on a status list token (verify_status_list's max_size), so a
# list the protocol accepts is never cut short by the fetch.
MAX_STATUS_LIST_BYTES = 2 * 1024 * 1024
MIN_TTL = 60
MAX_TTL = 3600
RETRY_AFTER = 10
MAX_ENTRIES = 1024
FETCH_TIMEOUT = 5.0  # seconds, per network operation
FETCH_DEADLINE = 10.0  # seconds for the whole answer: a trickling host can't hold a worker
_MAX_LIST_ID = 2**31 - 1  # the node's route accepts 1..2^31-1
_LIST_ID = re.compile(r"[1-9][0-9]{0,9}")
# No userinfo (@), query (?), fragment (#), escapes (%), backslashes or whitespace: a
# status uri is a plain origin, a path and a list number.
_URI_CHARS = re.compile(r"[A-Za-z0-9._~:/\[\]-]{1,2048}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


# --- the rules ---------------------------------------------------------------------------


def status_stale_limit(registry: P.Registry) -> int:
    """Seconds a cached status list may serve past its ttl while its issuer is down: the
    registry policy's ``status_stale_limit``; 0 (fail closed at once) when it is absent
    or not whole seconds in 0..7 days."""
    value = registry.policy.get("status_stale_limit", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value if 0 <= value <= MAX_STATUS_STALE_LIMIT else 0


def _origin(parts: tuple[str, str | None, int | None]) -> tuple[str, str | None, int | None]:
    scheme, host, port = parts
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme)


def _list_id(uri: str, node_id: str) -> int | None:
    """``n`` if ``uri`` is ``<node_id>/v1/status-lists/<n>`` (scheme and host compared
    case-insensitively, default ports made explicit), else None."""
    if not _URI_CHARS.fullmatch(uri):
        return None
    try:
        got, base = urlsplit(uri), urlsplit(node_id.rstrip("/"))
        got_port, base_port = got.port, base.port
    except ValueError:  # a port that is not a number
        return None
    scheme = got.scheme.lower()
    if scheme not in _DEFAULT_PORTS or got.username is not None or got.password is not None:
        return None
    if got.query or got.fragment or not got.hostname:
        return None
    if _origin((scheme, got.hostname, got_port)) != _origin(
        (base.scheme.lower(), base.hostname, base_port)
    ):
        return None
    prefix = base.path.rstrip("/") + STATUS_LIST_PATH
    if not got.path.startswith(prefix):
        return None
    number = got.path[len(prefix) :]
    if not _LIST_ID.fullmatch(number) or int(number) > _MAX_LIST_ID:
        return None
    return int(number)


def allowed_status_uri(registry: P.Registry, issuer: str, uri: str) -> str:
    """The URL to fetch for the status list ``uri`` of an attestation issued by ``issuer``:
    ``<member id>/v1/status-lists/<n>``, rebuilt from the registry's member id.

    Raises NodeError ``issuer_not_member`` or ``issuer_suspended`` (401) when ``issuer`` is
    not an active member, and ``status_uri_not_allowed`` (422) when ``uri`` is not a
    status list of that member's node (another host, scheme or port, userinfo, a query
    or fragment, escapes, another path).
    """
    member = registry.members.get(issuer)
    if member is None:
        raise NodeError(
            P.IssuerNotMember.code,
            f"{issuer!r} is not a member of alliance {registry.alliance!r} "
            f"(registry version {registry.version})",
            status=P.IssuerNotMember.http_status,
        )
    if member.status != "active":
        raise NodeError(
            P.IssuerSuspended.code,
            f"member {issuer!r} is {member.status} in registry version {registry.version}",
            status=P.IssuerSuspended.http_status,
        )
    list_id = _list_id(uri, member.id)
    if list_id is None:
        raise NodeError(
            "status_uri_not_allowed",
            f"status list uri {uri[:200]!r} is not a status list of {member.id!r} "
            f"({member.id}{STATUS_LIST_PATH}<n>)",
            status=422,
        )
    return f"{member.id.rstrip('/')}{STATUS_LIST_PATH}{list_id}"


@dataclass(slots=True)
class _CachedList:
    """What the node knows about one status list uri."""

    copy: P.VerifiedStatusList | None = None  # the newest verified list
    fetched_at: int | None = None  # when ``copy`` was fetched (node clock)
    attempted_at: int | None = None  # the last fetch attempt, successful or not
    failing_since: int | None = None  # the first failed attempt since the last success
    last_error: tuple[str, str] | None = None

    def fresh_until(self, min_ttl: int, max_ttl: int) -> int | None:
        if self.copy is None or self.fetched_at is None:
            return None
        ttl = min(max(self.copy.ttl or 0, min_ttl), max_ttl)
        return min(self.fetched_at + ttl, self.copy.expires_at)

    def serves_stale(self, now: int, min_ttl: int, max_ttl: int, stale_limit: int) -> bool:
        """Whether the copy may still serve at ``now`` while its issuer is down: less
        than ``stale_limit`` seconds past its ttl, and its ``exp`` not passed."""
        fresh = self.fresh_until(min_ttl, max_ttl)
        if fresh is None or self.copy is None:
            return False
        return now < fresh + stale_limit and now <= self.copy.expires_at

    def took(self, fetched: P.VerifiedStatusList, now: int) -> None:
        self.copy, self.fetched_at = fetched, now
        self.attempted_at, self.failing_since, self.last_error = now, None, None

    def failed(self, code: str, message: str, now: int) -> None:
        self.attempted_at, self.last_error = now, (code, message)
        if self.failing_since is None:
            self.failing_since = now


@dataclass(frozen=True, slots=True)
class StatusCacheStats:
    """Counters since the cache was made, for a caller to export.

    ``hits``: answered from a fresh copy; ``fetches``: GETs made; ``fetch_failures``:
    fetches whose list was not taken; ``stale_served``: answered from a copy past its
    ttl while its issuer is down; ``refused``: references refused before any fetch;
    ``unavailable``: failed closed (503); ``entries``: uris held now."""

    hits: int
    fetches: int
    fetch_failures: int
    stale_served: int
    refused: int
    unavailable: int
    entries: int


class _FetchFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class _UriLock:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


# --- the cache ---------------------------------------------------------------------------


class StatusListCache:
    """Other members' status lists, verified with registry keys and cached per uri.

    Thread-safe; one instance per node process (built in the app's lifespan)."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        max_token_bytes: int = MAX_STATUS_LIST_BYTES,
        min_ttl: int = MIN_TTL,
        max_ttl: int = MAX_TTL,
        retry_after: int = RETRY_AFTER,
        timeout: float = FETCH_TIMEOUT,
        deadline: float = FETCH_DEADLINE,
    ) -> None:
        if not 0 <= min_ttl <= max_ttl or max_entries < 1 or max_token_bytes < 1:
            raise ValueError("need 0 <= min_ttl <= max_ttl, max_entries >= 1, max_token_bytes >= 1")
        self.max_entries, self.max_token_bytes = max_entries, max_token_bytes
        self.min_ttl, self.max_ttl, self.retry_after = min_ttl, max_ttl, retry_after
        self.timeout, self.deadline = timeout, deadline
        self._entries: OrderedDict[tuple[str, str], _CachedList] = OrderedDict()
        self._uri_locks: dict[tuple[str, str], _UriLock] = {}
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("hits", "fetches", "fetch_failures", "stale_served", "refused", "unavailable"), 0
        )

    def snapshot(self) -> StatusCacheStats:
        """The counters and the number of uris held, read at one instant."""
        with self._lock:
            return StatusCacheStats(**self._counts, entries=len(self._entries))

    def status_of(
        self,
        client: httpx.Client,
        registry: P.Registry,
        ref: P.StatusReference,
        issuer: str,
        *,
        now: int,
    ) -> int:
        """The status value (0 valid, 1 revoked, 2 suspended, ...) at ``ref.idx`` of the
        status list ``ref.uri`` of ``issuer``, per ``registry`` (the version in effect).
        ``ref`` and ``issuer`` must come from a verified presentation.

        Fetches the list with ``client`` only when no fresh copy is held (see the module
        docstring for the windows). Raises NodeError: ``issuer_not_member`` /
        ``issuer_suspended`` (401) or ``status_uri_not_allowed`` (422) before any fetch;
        ``status_index_out_of_range`` (400) for an index outside the list;
        ``status_unavailable`` (503) when no copy may serve (fail closed).
        """
        try:
            url = allowed_status_uri(registry, issuer, ref.uri)
        except NodeError:
            self._count("refused")
            raise
        key = (issuer, ref.uri)
        stale_limit = status_stale_limit(registry)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._is_fresh(entry, now):
                self._entries.move_to_end(key)
                self._counts["hits"] += 1
                return self._read(entry, ref)
        with self._uri_lock(key):
            with self._lock:  # another thread may have fetched it while this one waited
                entry = self._entries.get(key) or _CachedList()
                fresh = self._is_fresh(entry, now)
                # the back-off is for an issuer that failed; one that answered is asked
                # again as soon as its list is past its ttl
                retry = (
                    entry.failing_since is None
                    or entry.attempted_at is None
                    or now >= entry.attempted_at + self.retry_after
                )
                if fresh:
                    self._counts["hits"] += 1
            if not fresh and retry:
                self._fetch_into(entry, client, registry, url, ref.uri, issuer, now=now)
            with self._lock:
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
                if fresh or self._is_fresh(entry, now):
                    return self._read(entry, ref)
                if entry.serves_stale(now, self.min_ttl, self.max_ttl, stale_limit):
                    self._counts["stale_served"] += 1
                    return self._read(entry, ref)
                self._counts["unavailable"] += 1
                raise self._unavailable(entry, ref.uri, issuer, stale_limit, now)

    # --- helpers -------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _is_fresh(self, entry: _CachedList, now: int) -> bool:
        fresh = entry.fresh_until(self.min_ttl, self.max_ttl)
        return fresh is not None and now < fresh

    @staticmethod
    def _read(entry: _CachedList, ref: P.StatusReference) -> int:
        if entry.copy is None:  # unreachable: callers checked that a copy serves
            raise RuntimeError("no status list copy to read")
        try:
            return P.status_at(entry.copy.status_list, ref.idx)
        except P.StatusIndexOutOfRange as exc:
            raise NodeError(exc.code, exc.message, status=exc.http_status) from exc

    @contextmanager
    def _uri_lock(self, key: tuple[str, str]) -> Iterator[None]:
        with self._lock:
            held = self._uri_locks.setdefault(key, _UriLock())
            held.users += 1
        try:
            with held.lock:
                yield
        finally:
            with self._lock:
                held.users -= 1
                if held.users == 0:
                    del self._uri_locks[key]

    def _fetch_into(
        self,
        entry: _CachedList,
        client: httpx.Client,
        registry: P.Registry,
        url: str,
        uri: str,
        issuer: str,
        *,
        now: int,
    ) -> None:
        """Fetch and verify the list; take it into ``entry`` or record why not. Holds the
        uri's lock (not the table's) while on the network."""
        self._count("fetches")

        def resolve(iss: str, kid: str | None, alg: str) -> P.PublicKey:
            return registry.resolve_issuer_key(iss, kid, alg, now=now)

        try:
            token = self._get(client, url)
            fetched = P.verify_status_list(
                token,
                uri=uri,
                issuer=issuer,
                resolve_issuer_key=resolve,
                now=now,
                max_size=self.max_token_bytes,
            )
            held = entry.copy
            if held is not None and fetched.issued_at < held.issued_at:
                raise _FetchFailed(
                    "status_list_rollback",
                    f"{url} served a list issued at {fetched.issued_at}, older than the one "
                    f"held (issued at {held.issued_at})",
                )
        except P.ProtocolError as exc:
            failure = _FetchFailed(exc.code, exc.message)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            failure = _FetchFailed("status_list_unreachable", f"fetching {url} failed: {exc!r}")
        except _FetchFailed as exc:
            failure = exc
        else:
            with self._lock:
                entry.took(fetched, now)
            return
        log.warning("status list fetch failed [%s]: %s", failure.code, failure.message)
        with self._lock:
            self._counts["fetch_failures"] += 1
            entry.failed(failure.code, failure.message, now)

    def _get(self, client: httpx.Client, url: str) -> str:
        """GET ``url``: 200 only, no redirect, no content coding, at most
        ``max_token_bytes`` read, within ``deadline`` seconds; the body as ASCII."""
        started = time.monotonic()
        with client.stream(
            "GET",
            url,
            headers={"Accept": STATUS_LIST_MEDIA_TYPE, "Accept-Encoding": "identity"},
            timeout=self.timeout,
            follow_redirects=False,
        ) as response:
            if response.status_code != 200:
                raise _FetchFailed(
                    "status_list_unreachable", f"{url} answered {response.status_code}"
                )
            coding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if coding != "identity":
                raise _FetchFailed(
                    "status_list_unreachable", f"{url} sent a {coding!r} body unasked"
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_token_bytes:
                raise self._too_large(url)
            body = bytearray()
            for chunk in response.iter_bytes():  # identity only: checked above
                body += chunk
                if len(body) > self.max_token_bytes:
                    raise self._too_large(url)
                if time.monotonic() - started > self.deadline:
                    raise _FetchFailed(
                        "status_list_unreachable", f"{url} took over {self.deadline} s to answer"
                    )
        try:
            return body.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise _FetchFailed(
                P.MalformedToken.code, f"{url} sent non-ASCII bytes, not a compact JWS"
            ) from exc

    def _too_large(self, url: str) -> _FetchFailed:
        return _FetchFailed(
            P.TokenTooLarge.code,
            f"the status list at {url} is larger than {self.max_token_bytes} bytes",
        )

    def _unavailable(
        self, entry: _CachedList, uri: str, issuer: str, stale_limit: int, now: int
    ) -> NodeError:
        reason = f"{entry.last_error[1]} [{entry.last_error[0]}]" if entry.last_error else "none"
        since = entry.failing_since
        down = f"for {now - since} s" if since is not None else "now"
        if entry.copy is None or entry.fetched_at is None:
            message = (
                f"the status of this attestation can't be checked: no valid status list "
                f"{uri} could be fetched from {issuer} (failing {down}; last error: {reason})"
            )
        elif now > entry.copy.expires_at:
            message = (
                f"the last good status list {uri} expired at {entry.copy.expires_at} and "
                f"{issuer} has been unreachable {down} (last error: {reason}); failing closed"
            )
        else:
            message = (
                f"{issuer} has been unreachable {down} (last error: {reason}); its status "
                f"list {uri} was last fetched {now - entry.fetched_at} s ago and the alliance "
                f"policy lets a cached list serve {stale_limit} s past its ttl; failing closed"
            )
        details = {"issuer": issuer, "uri": uri, "stale_limit": stale_limit}
        if entry.last_error is not None:
            details["cause"] = entry.last_error[0]
        if since is not None:
            details["unreachable_for"] = now - since
        return NodeError("status_unavailable", message, status=503, details=details)
