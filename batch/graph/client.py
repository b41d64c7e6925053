"""Graph client: the HTTPS session, single requests, paging, ``$batch`` posts, UPN resolution.

Every request to Microsoft Graph goes through :class:`GraphClient`; the same code talks to a
real tenant and to the built-in simulated one. It owns:

- one pooled ``requests.Session`` (pool >= the engine's concurrency, connect/read timeouts,
  ``verify`` set to the configured CA bundle) and a :class:`batch.graph.auth.TokenProvider`;
- single requests (:meth:`GraphClient.get`, :meth:`~GraphClient.get_all`, ``post``,
  ``patch``) get the same retry rule as ``$batch`` items (see
  :class:`RetryPolicy`): reads and idempotent requests are retried on 429, 500, 502, 503
  and 504 after ``Retry-After`` (seconds, fractional too, or an HTTP date), or after
  exponential backoff with jitter when the header is absent, at most ``max_retries``
  times and never longer than ``max_retry_after`` a wait. Writes are retried only on 429
  and 503, the answers that say the request was not carried out (graph-reference.md
  section 2); a 500, 502, 504 or a lost connection on a write is an unknown outcome and
  is raised so the caller can read the state back before anything is sent again. So a
  500 on ``GET /subscribedSkus`` or on a page of users no longer ends a run;
- a 401 renews the token once and retries; a second 401, or a 403 after a renewal, raises
  :class:`batch.errors.PermissionDenied`;
- errors mapped once (by :mod:`batch.graph.answers`) into
  :class:`~batch.errors.GraphStatusError` / :class:`~batch.errors.PermissionDenied` /
  :class:`~batch.errors.GraphRequestError`, each
  carrying method, URL, status, Graph error code and request-id;
- :meth:`GraphClient.send_batch`, one raw ``POST /$batch`` for the engine (``batch.graph.engine``),
  which does its own per-item retries and pacing;
- :meth:`GraphClient.resolve_users`: UPNs to user objects through
  ``$filter=userPrincipalName in (...)`` (quotes doubled, percent-encoded so ``#`` is
  ``%23``: :mod:`batch.graph.queries`), many filters per ``$batch``, and each returned UPN
  checked against the one asked for, so that writes can then be sent by object id.

Nothing here logs an ``Authorization`` header or a token: requests are logged as method, URL,
status, request-id, attempt and timing only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests

from batch.config import Settings
from batch.errors import GraphRequestError, GraphStatusError
from batch.graph.answers import (
    BatchReply,
    backoff_delay,
    display_url,
    header_float,
    index_responses,
    parse_retry_after,
    request_error,
    status_error,
)
from batch.graph.auth import (
    DeviceCodeTokenProvider,
    MsalTokenProvider,
    TokenProvider,
    as_token_provider,
)
from batch.graph.lifetime import InFlight, SignInAhead
from batch.graph.queries import (
    chunks,
    encode_query,
    is_guid,
    users_filter_path,
)
from batch.graph.reads import (
    MAX_BATCH_ITEMS,
    MAX_IN_FLIGHT,
    RETRY_READ_STATUSES,
    ReadAnswer,
    ReadBudget,
    get_many,
)
from batch.graph.transport import new_session

log = logging.getLogger(__name__)

__all__ = ["MAX_BATCH_ITEMS", "RETRY_READ_STATUSES", "ClientStats", "GraphClient", "RetryPolicy"]

#: Values per ``in (...)`` clause. Graph's ``in`` on directory objects is "limited to 15
#: expressions" and answers 400 past it (graph-reference.md section 11, known-issues.md).
MAX_IN_VALUES = 15
RESOLVE_CHUNK = MAX_IN_VALUES
#: Longest string an ``eq`` (or ``in``) comparison may hold (known-issues.md, section 11).
MAX_EQ_LENGTH = 120
DEFAULT_TIMEOUT = (10.0, 60.0)
USER_AGENT = "m365batch"


#: answers after which a write is sent again: only those that say it was not carried out
#: (429 throttled, 503 "repeat the request after a delay"); 500/502/504 leave the outcome
#: unknown, so a write is never resent blindly after them
RETRY_WRITE_STATUSES = frozenset({429, 503})


@dataclass
class RetryPolicy:
    """How single requests are retried (the engine has its own, per ``$batch`` item).

    The rule is the one the engine applies to items and Graph's throttling guidance asks
    for (graph-reference.md section 2): wait ``Retry-After`` when given, else back off
    exponentially with jitter; retry a bounded number of times; a wait longer than
    ``max_retry_after`` is not taken and the error is raised instead.
    """

    max_retries: int = 5
    backoff_base: float = 1.0  #: first backoff without Retry-After, doubled each time
    backoff_cap: float = 60.0
    max_retry_after: float = 300.0  #: a longer Retry-After is not waited for: the error is raised


@dataclass
class ClientStats:
    """Counters of what the client sent, for progress lines and the report."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  #: answers with status 429 (single requests and whole batches)
    server_errors: int = 0  #: answers with status 5xx (single requests and whole batches)
    resource_units: float = 0.0  #: sum of x-ms-resource-unit headers seen
    token_renewals: int = 0
    #: round trips answered, and their seconds: single requests, ``$batch`` posts of reads
    singles: int = 0
    single_seconds: float = 0.0
    read_batches: int = 0
    read_batch_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        """Add to several counters at once, thread-safely."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def round_trips(self, default: float = 0.25) -> tuple[float, float]:
        """Seconds a single request and a ``$batch`` of reads took on average so far (estimates).

        Before any ``$batch`` of reads was answered one is taken to cost two single round
        trips; before anything was answered, a single one ``default`` seconds.
        """
        with self._lock:
            single = self.single_seconds / self.singles if self.singles else default
            batch = self.read_batch_seconds / self.read_batches if self.read_batches else 2 * single
        return single, batch


def build_session(
    settings: Settings, *, pool_size: int = 16, user_agent: str = USER_AGENT
) -> requests.Session:
    """A pooled session trusting the configured CA bundle; no automatic retries."""
    session = new_session(settings.ca_bundle, pool_size=pool_size)
    session.headers["User-Agent"] = user_agent
    return session


class GraphClient:
    """A Microsoft Graph client over one pooled HTTPS session and one token provider."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        token_provider: TokenProvider | Callable[[], str] | None = None,
        pool_size: int = 16,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.graph_url = settings.graph_url.rstrip("/")
        origin = urlparse(self.graph_url)
        self._origin = (origin.scheme, origin.netloc.lower())
        self.session = session or build_session(settings, pool_size=pool_size)
        if token_provider is None:
            token_provider = (
                DeviceCodeTokenProvider(settings, timeout=timeout)
                if settings.device_code
                else MsalTokenProvider(settings, timeout=timeout)
            )
        self.tokens = as_token_provider(token_provider)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self.sleep = sleep
        #: resource units batched reads spend (:mod:`batch.graph.reads`), shared by threads
        self.read_budget = ReadBudget(sleep=sleep)
        #: what was learnt about the tenant once and need not be asked again (its size)
        self.facts: dict[str, Any] = {}
        self._ahead: SignInAhead | None = None
        self._in_flight = InFlight()

    def close(self) -> None:
        """Close the connections, its sign-in's too, once the requests under way end."""
        self._in_flight.close()
        self.session.close()
        close = getattr(self.tokens, "close", None)
        if close is not None:
            close()

    def sign_in_ahead(self) -> None:
        """Fetch the first token on a thread, with app credentials (:mod:`.lifetime`)."""
        if isinstance(self.tokens, MsalTokenProvider):
            self._ahead = SignInAhead(self.tokens)

    # -- URLs -------------------------------------------------------------------------

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The absolute URL for a path relative to the Graph version root (or a nextLink)."""
        if path.startswith("https://") or path.startswith("http://"):
            parsed = urlparse(path)
            if (parsed.scheme, parsed.netloc.lower()) != self._origin:
                # Never send the token to another host, whatever a response told us.
                raise GraphRequestError(
                    f"Refusing to follow a link to another host: {parsed.netloc}",
                    method="GET",
                    url=display_url(path),
                )
            url = path
        else:
            url = f"{self.graph_url}/{path.lstrip('/')}"
        if params:
            query = encode_query(params)
            if query:
                url += ("&" if "?" in url else "?") + query
        return url

    # -- single requests ----------------------------------------------------------------

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """GET one resource and return its JSON body."""
        return self.request("GET", path, params=params, headers=headers)

    def get_all(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of a collection, following ``@odata.nextLink`` whole.

        Request headers (``ConsistencyLevel: eventual`` for advanced queries) are sent again
        with every page, as Graph does not carry them over.
        """
        page = self.request("GET", path, params=params, headers=headers)
        while True:
            yield from page.get("value") or []
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self.request("GET", str(link), headers=headers)

    def post(
        self,
        path: str,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = False,
    ) -> dict[str, Any]:
        """POST and return the JSON body (``{}`` for an empty answer)."""
        return self.request(
            "POST", path, json_body=json_body, headers=headers, idempotent=idempotent
        )

    def patch(
        self, path: str, json_body: Any = None, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """PATCH and return the JSON body (``{}`` for 204)."""
        return self.request("PATCH", path, json_body=json_body, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """Send one request with retries; return the JSON body or raise a GraphError.

        ``idempotent`` defaults to True for GET only: a GET is retried on every status of
        :data:`RETRY_READ_STATUSES`, any other method only on :data:`RETRY_WRITE_STATUSES`
        unless the caller says it is safe to repeat (``idempotent=True``).
        """
        method = method.upper()
        url = self.url(path, params)
        if idempotent is None:
            idempotent = method == "GET"
        retry_statuses = RETRY_READ_STATUSES if idempotent else RETRY_WRITE_STATUSES
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            response = self._send(
                method,
                url,
                headers=headers,
                json_body=json_body,
                attempt=attempt,
                idempotent=idempotent,
            )
            status = response.status_code
            body = _json_or_text(response)
            if status < 400:
                return body if isinstance(body, dict) else {}
            if status in (401, 403) and not renewed:
                renewed = True
                self._renew(response)
                continue
            if status in retry_statuses and attempt <= self.retry.max_retries:
                delay = parse_retry_after(response.headers.get("Retry-After"))
                if delay is None:
                    delay = backoff_delay(attempt, self.retry.backoff_base, self.retry.backoff_cap)
                if delay <= self.retry.max_retry_after:
                    self.stats.add(retries=1)
                    log.debug(
                        "%s %s: %s, retrying in %.2f s", method, display_url(url), status, delay
                    )
                    self.sleep(delay)
                    continue
            raise status_error(method, url, status, body, response.headers)

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        json_body: Any,
        attempt: int,
        idempotent: bool,
    ) -> requests.Response:
        """One HTTP exchange; transport failures retried only where that cannot repeat a write."""
        transport_attempt = 0
        while True:
            transport_attempt += 1
            try:
                return self._exchange(
                    method, url, headers=headers, json_body=json_body, attempt=attempt
                )
            except GraphRequestError as exc:
                never_sent = getattr(exc, "never_sent", False)
                if (idempotent or never_sent) and transport_attempt <= self.retry.max_retries:
                    delay = backoff_delay(
                        transport_attempt, self.retry.backoff_base, self.retry.backoff_cap
                    )
                    self.stats.add(retries=1)
                    log.debug("%s %s: %s, retrying in %.2f s", method, display_url(url), exc, delay)
                    self.sleep(delay)
                    continue
                raise

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        json_body: Any,
        attempt: int,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        if self._ahead is not None:
            self._ahead.wait()
        with self._in_flight.request(method, url):
            token = self.tokens.token()
            send_headers = {
                "Authorization": f"Bearer {token}",
                "client-request-id": str(uuid.uuid4()),
            }
            if json_body is not None:
                send_headers["Content-Type"] = "application/json"
            send_headers.update(headers or {})
            started = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=send_headers,
                    data=json.dumps(json_body) if json_body is not None else None,
                    timeout=timeout or self.timeout,
                )
            except requests.RequestException as exc:
                elapsed = time.monotonic() - started
                log.debug(
                    "%s %s attempt %d: no answer after %.0f ms (%s)",
                    method,
                    display_url(url),
                    attempt,
                    elapsed * 1000,
                    type(exc).__name__,
                )
                raise request_error(method, url, exc) from exc
        response._m365batch_token = token  # type: ignore[attr-defined]  # for renew()
        elapsed = time.monotonic() - started
        units = header_float(response.headers.get("x-ms-resource-unit"))
        batch = url.endswith("/$batch")
        self.stats.add(
            requests=1,
            singles=int(not batch),
            single_seconds=0.0 if batch else elapsed,
            throttled=int(response.status_code == 429),
            server_errors=int(response.status_code >= 500),
            resource_units=units,
        )
        log.debug(
            "%s %s attempt %d: %s in %.0f ms, request-id %s",
            method,
            display_url(url),
            attempt,
            response.status_code,
            elapsed * 1000,
            response.headers.get("request-id"),
        )
        return response

    def _renew(self, response: requests.Response) -> None:
        stale = getattr(response, "_m365batch_token", "")
        self.stats.add(token_renewals=1)
        self.tokens.renew(stale)

    # -- $batch ---------------------------------------------------------------------------

    def send_batch(
        self, items: list[dict[str, Any]], *, timeout: tuple[float, float] | None = None
    ) -> BatchReply:
        """POST one ``$batch`` of at most 20 items once; the engine classifies the answer.

        A 401 on the whole request (nothing in it was carried out) renews the token once and
        sends again; a second 401, or a 403 on the whole request, raises PermissionDenied.
        Every other answer, and a missing one, is returned as a :class:`BatchReply`.
        """
        if not 0 < len(items) <= MAX_BATCH_ITEMS:
            raise ValueError(f"a $batch holds 1 to {MAX_BATCH_ITEMS} requests, not {len(items)}")
        url = f"{self.graph_url}/$batch"
        renewed = False
        started = time.monotonic()
        while True:
            try:
                response = self._exchange(
                    "POST",
                    url,
                    headers=None,
                    json_body={"requests": items},
                    attempt=1,
                    timeout=timeout,
                )
            except GraphRequestError as exc:
                return BatchReply(
                    status=None,
                    headers={},
                    responses=None,
                    error=exc,
                    delivered=not getattr(exc, "never_sent", False),
                    elapsed=time.monotonic() - started,
                )
            status = response.status_code
            body = _json_or_text(response)
            if status == 401 and not renewed:
                renewed = True
                self._renew(response)
                continue
            if status in (401, 403):
                raise status_error("POST", url, status, body, response.headers)
            responses = index_responses(body) if status < 400 or status == 424 else None
            return BatchReply(
                status=status,
                headers=response.headers,
                responses=responses,
                request_id=response.headers.get("request-id"),
                elapsed=time.monotonic() - started,
                body=body,
            )

    # -- users ----------------------------------------------------------------------------

    def resolve_users(
        self,
        users: Iterable[str],
        *,
        select: Iterable[str] = ("id", "userPrincipalName"),
        in_flight: int = MAX_IN_FLIGHT,
    ) -> dict[str, dict[str, Any]]:
        """Look users up by UPN (or object id) and return ``{as asked: user object}``.

        Users not found are absent from the result. A user is only returned under the UPN
        that was asked for when Graph's ``userPrincipalName`` equals it (ignoring case), so
        an oddly encoded UPN can never resolve to somebody else.

        Query limits (graph-reference.md section 11): at most :data:`MAX_IN_VALUES` values
        go in one ``in (...)``; a value longer than :data:`MAX_EQ_LENGTH` characters is
        not asked for (no UPN is that long: 64 + 1 + 48), so it is simply not found. When
        Graph refuses a lookup with 400, its values are asked for one by one, and a single
        value Graph still refuses is left out (not found, so its row fails, not the run).
        ``in_flight``: ``$batch`` requests at once (1: one after the other, 20 to a batch).
        """
        fields = list(dict.fromkeys(["id", "userPrincipalName", *select]))
        wanted: dict[str, list[str]] = {}  # casefolded -> every spelling asked
        for raw in users:
            text = str(raw).strip()
            if text and text not in wanted.setdefault(text.casefold(), []):
                wanted[text.casefold()].append(text)
        ids = [v[0] for v in wanted.values() if is_guid(v[0])]
        upns = [v[0] for v in wanted.values() if not is_guid(v[0]) and len(v[0]) <= MAX_EQ_LENGTH]
        queries = {
            users_filter_path("id", chunk, fields): ("id", chunk)
            for chunk in chunks(ids, RESOLVE_CHUNK)
        }
        queries.update(
            {
                users_filter_path("userPrincipalName", chunk, fields): ("userPrincipalName", chunk)
                for chunk in chunks(upns, RESOLVE_CHUNK)
            }
        )
        found: dict[str, dict[str, Any]] = {}
        paths = list(queries)
        while paths:
            rejected: list[tuple[str, GraphStatusError]] = []
            for user in self._read_many(paths, rejected=rejected, in_flight=in_flight):
                if not isinstance(user, dict):
                    continue
                for key in ("userPrincipalName", "id"):
                    value = str(user.get(key) or "")
                    for asked in wanted.get(value.casefold(), []):
                        found[asked] = user
            paths = []
            for path, error in rejected:
                prop, values = queries[path]
                if len(values) == 1:
                    log.warning("Graph refused the lookup of %s: %s", values[0], error)
                    continue
                for value in values:  # one by one: only the value Graph refuses is left out
                    single = users_filter_path(prop, [value], fields)
                    queries[single] = (prop, [value])
                    paths.append(single)
        return found

    def _read_many(
        self,
        paths: list[str],
        *,
        rejected: list[tuple[str, GraphStatusError]] | None = None,
        in_flight: int = MAX_IN_FLIGHT,
    ) -> Iterator[dict[str, Any]]:
        """Yield the items of several collection GETs, sent 20 to a ``$batch`` when many,
        several batches in flight (:func:`batch.graph.reads.get_many`).

        With ``rejected``, a GET that Graph answers 400 (a query it will not run) is put
        there with its error instead of being raised.
        """
        if len(paths) <= 1:
            for path in paths:
                try:
                    yield from self.get_all(path)
                except GraphStatusError as exc:
                    if rejected is None or exc.status != 400:
                        raise
                    rejected.append((path, exc))
            return
        answers = get_many(self, paths, in_flight=in_flight)
        for path in dict.fromkeys(paths):
            answer = answers[path]
            if answer.status < 400:
                body = answer.body if isinstance(answer.body, dict) else {}
                yield from body.get("value") or []
                if body.get("@odata.nextLink"):
                    yield from self.get_all(str(body["@odata.nextLink"]))
            elif rejected is not None and answer.status == 400:
                rejected.append((path, self._read_error(path, answer)))
            else:
                raise self._read_error(path, answer)

    def _read_error(self, path: str, answer: ReadAnswer) -> GraphStatusError:
        return status_error("GET", self.url(path), answer.status, answer.body, answer.headers)


def _json_or_text(response: requests.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        return response.text
