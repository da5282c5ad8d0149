"""A small STAC API client on the standard library (urllib + json): nothing to install inside QGIS.

:class:`StacApi` reads the landing page, learns from ``conformsTo`` what a search may use (``query``,
``filter`` in CQL2-JSON, ``sortby``, ``fields``), searches with POST (GET when POST is not offered) and
follows ``next`` links. :func:`request_json` retries 429, 5xx, timeouts and dropped connections with
exponential backoff, then raises a :class:`GlacierFlowError` naming the service and what to do.
:class:`SasSigner` signs Planetary Computer asset URLs with cached SAS tokens.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import GlacierFlowError, redact_secrets

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_DELAY_S = 30.0
MAX_PAGES = 500
USER_AGENT = "GlacierFlow-QGIS-plugin"


@dataclass(frozen=True)
class HttpPolicy:
    """How requests are made and retried.

    Attributes:
        timeout: seconds to wait for a connection or an answer.
        retries: how many times a failed request is tried again (429, 5xx, timeout, dropped connection).
        backoff: first wait between tries, s; doubled after each try (a ``Retry-After`` answer wins).
        headers: extra request headers (for a private API's credentials).
    """

    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    """Who is asked, for messages: the service's ``title`` and what to do on 401/403 (``auth_hint``)."""

    title: str
    auth_hint: str


def check_http_url(url: str, what: str) -> None:
    """Refuse anything but http(s) URLs: a service (or a catalogue it returns) must not make the plugin read
    local files or other schemes."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise GlacierFlowError(f"{what}: only http and https addresses are used, not '{scheme or 'no scheme'}:' "
                               "addresses; check the service URL.")


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without a ``user:password@`` part, and that part as a Basic ``Authorization`` header ({} when
    absent): urllib cannot send credentials written in a URL, and the URL is then safe to show."""
    import base64

    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, {}
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    plain = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    return plain, {"Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}


def request_json(method: str, url: str, policy: HttpPolicy, service: Service, body: dict | None = None,
                 headers: dict[str, str] | None = None) -> Any:
    """The JSON answer of ``method url`` (with a JSON ``body``), retried on transient faults.

    Raises GlacierFlowError: 401/403 (with the service's credentials hint), other 4xx (with the server's
    detail), or after ``policy.retries`` retries of 429/5xx, timeouts and connection errors."""
    check_http_url(url, service.title)
    try:
        return _request_json(method, url, policy, service, body, headers)
    except GlacierFlowError as error:
        raise GlacierFlowError(redact_secrets(str(error))) from None  # a URL's password or token never shown


def _request_json(method: str, url: str, policy: HttpPolicy, service: Service, body: dict | None,
                  headers: dict[str, str] | None) -> Any:
    url, basic = split_credentials(url)
    data = json.dumps(body).encode("utf-8") if body is not None else None
    all_headers = {"Accept": "application/geo+json, application/json", "User-Agent": USER_AGENT,
                   **basic, **policy.headers, **(headers or {})}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    last_problem = ""
    for attempt in range(policy.retries + 1):
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        wait = policy.backoff * (2 ** attempt)
        try:
            with _opener().open(request, timeout=policy.timeout) as answer:  # nosec B310
                payload = answer.read()
            return _parse_json(payload, url, service)
        except urllib.error.HTTPError as error:
            detail = _error_detail(error)
            if error.code in (401, 403):
                raise GlacierFlowError(f"{service.title} refused access (HTTP {error.code}: {detail}) to {url}. "
                                       f"{service.auth_hint}") from None
            if error.code not in RETRY_STATUSES:
                raise GlacierFlowError(f"{service.title} rejected the request (HTTP {error.code}: {detail}) to "
                                       f"{url}: check the API URL and the collection name.") from None
            last_problem = f"answered HTTP {error.code} ({detail})"
            wait = _retry_after(error, wait)
        except (socket.timeout, TimeoutError):
            last_problem = f"did not answer within {policy.timeout:g} s"
        except urllib.error.URLError as error:
            if isinstance(error.reason, (socket.timeout, TimeoutError)):
                last_problem = f"did not answer within {policy.timeout:g} s"
            else:
                last_problem = f"could not be reached ({error.reason})"
        except (ConnectionError, http.client.HTTPException) as error:
            last_problem = f"dropped the connection ({type(error).__name__})"
        if attempt < policy.retries:
            time.sleep(min(wait, MAX_DELAY_S))
    raise GlacierFlowError(f"{service.title} {last_problem} at {url}, {policy.retries + 1} tries. Check the internet "
                           "connection (and any proxy) and the API URL, or try again later: the service may be "
                           "down or busy.")


def _opener() -> urllib.request.OpenerDirector:
    """An opener with the proxy of this moment (``urlopen`` caches one read once, at its first use)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler(urllib.request.getproxies()))


def _parse_json(payload: bytes, url: str, service: Service) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise GlacierFlowError(f"{service.title} answered {url} with something that is not JSON: check that the "
                               "API URL is a STAC API root.") from None


def _error_detail(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        text = ""
    try:
        parsed = json.loads(text)
        text = str(parsed.get("description") or parsed.get("detail") or parsed.get("message") or text)
    except (ValueError, AttributeError):
        pass
    return (text.strip() or error.reason or "no detail")[:300]


def _retry_after(error: urllib.error.HTTPError, default: float) -> float:
    try:
        return max(0.0, float(error.headers.get("Retry-After", "")))
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class Capabilities:
    """What a STAC API's search accepts, from its ``conformsTo`` and links.

    Attributes:
        search_url: the item search endpoint.
        post: True when searching with POST is offered (else GET).
        query: the ``query`` extension.
        filter: the ``filter`` extension with CQL2-JSON.
        sort: the ``sort`` extension (``sortby``).
        fields: the ``fields`` extension.
    """

    search_url: str
    post: bool
    query: bool = False
    filter: bool = False
    sort: bool = False
    fields: bool = False


def capabilities_of(landing: dict, conformance: list[str], root_url: str) -> Capabilities:
    """Read a landing page (and the ``/conformance`` list) into :class:`Capabilities`."""
    classes = [str(c) for c in conformance]

    def declares(fragment: str) -> bool:
        return any(fragment in c for c in classes)

    search_links = [link for link in landing.get("links", []) if link.get("rel") == "search"]
    methods = {str(link.get("method", "GET")).upper() for link in search_links}
    search_url = str(search_links[0]["href"]) if search_links else root_url.rstrip("/") + "/search"
    post = "POST" in methods or not search_links
    return Capabilities(
        search_url=search_url,
        post=post,
        query=declares("item-search#query"),
        filter=declares("item-search#filter") and (declares("cql2-json") or declares("filter#cql2-json")),
        sort=declares("item-search#sort"),
        fields=declares("item-search#fields"),
    )


class StacApi:
    """One STAC API: its capabilities (read once) and paged item search."""

    def __init__(self, root_url: str, policy: HttpPolicy, service: Service, prefer_get: bool = False) -> None:
        self.root_url = root_url.rstrip("/")
        self.policy = policy
        self.service = service
        self.prefer_get = prefer_get
        self._capabilities: Capabilities | None = None

    def capabilities(self) -> Capabilities:
        """The API's :class:`Capabilities` (landing page, then ``/conformance`` if the page lists none)."""
        if self._capabilities is None:
            landing = request_json("GET", self.root_url + "/", self.policy, self.service)
            if not isinstance(landing, dict):
                raise GlacierFlowError(f"{self.service.title} at {self.root_url} is not a STAC API (no landing "
                                       "page): check the API URL.")
            conformance = landing.get("conformsTo")
            if not conformance:
                answer = request_json("GET", self.root_url + "/conformance", self.policy, self.service)
                conformance = answer.get("conformsTo", []) if isinstance(answer, dict) else []
            if not any("item-search" in str(c) for c in conformance):
                raise GlacierFlowError(f"{self.service.title} at {self.root_url} does not offer STAC item search: "
                                       "use the root URL of a STAC API (not of a static catalog).")
            found = capabilities_of(landing, conformance, self.root_url)
            if self.prefer_get and found.post:
                found = Capabilities(found.search_url, False, found.query, found.filter, found.sort, found.fields)
            self._capabilities = found
        return self._capabilities

    def search(self, body: dict) -> Iterator[dict]:
        """Every item (a GeoJSON Feature dict) the search ``body`` finds, page after page."""
        capabilities = self.capabilities()
        method, url, current = ("POST" if capabilities.post else "GET"), capabilities.search_url, dict(body)
        seen_pages = set()
        for _ in range(MAX_PAGES):
            if method == "POST":
                page = request_json("POST", url, self.policy, self.service, body=current)
            else:
                page = request_json("GET", _with_query(url, current), self.policy, self.service)
            features = page.get("features", []) if isinstance(page, dict) else []
            for feature in features:
                if isinstance(feature, dict):
                    yield feature
            following = _next_link(page)
            if following is None or not features:
                return
            method, url, current = _follow(following, method, current)
            marker = json.dumps([method, url, current], sort_keys=True)
            if marker in seen_pages:
                return  # a server repeating the same next link would loop forever
            seen_pages.add(marker)
        raise GlacierFlowError(f"{self.service.title} returned more than {MAX_PAGES} pages: narrow the dates or area.")


def _next_link(page: Any) -> dict | None:
    if not isinstance(page, dict):
        return None
    for link in page.get("links", []):
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            return link
    return None


def _follow(link: dict, method: str, body: dict) -> tuple[str, str, dict]:
    """The next request: a POST link's ``body`` replaces the last body, or is merged into it with ``merge``."""
    next_method = str(link.get("method", "GET")).upper()
    if next_method != "POST":
        return "GET", str(link["href"]), {}
    link_body = link.get("body")
    if not isinstance(link_body, dict):
        return "POST", str(link["href"]), body
    merged = {**body, **link_body} if link.get("merge") else dict(link_body)
    return "POST", str(link["href"]), merged


def _with_query(url: str, body: dict) -> str:
    """``url`` with ``body`` as GET search parameters: lists comma-joined, ``sortby`` as ``+field``, ``fields``
    as ``a,-b``, other objects (``intersects``, ``query``, ``filter``) as JSON."""
    if not body:
        return url
    params = {}
    for key, value in body.items():
        if key == "sortby" and isinstance(value, list):
            params[key] = ",".join(("-" if s.get("direction") == "desc" else "+") + str(s.get("field")) for s in value)
        elif key == "fields" and isinstance(value, dict):
            params[key] = ",".join([str(f) for f in value.get("include", [])]
                                   + ["-" + str(f) for f in value.get("exclude", [])])
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            params[key] = ",".join(str(v) for v in value)
        elif isinstance(value, (dict, list)):
            params[key] = json.dumps(value, separators=(",", ":"))
        else:
            params[key] = str(value)
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + separator + urllib.parse.urlencode(params)


class SasSigner:
    """Appends Planetary Computer SAS tokens to asset URLs; one token per collection, kept until it expires.

    The subscription key (optional; it raises the rate limits) comes from ``subscription_key`` or the
    ``PC_SDK_SUBSCRIPTION_KEY`` environment variable and is sent as ``Ocp-Apim-Subscription-Key``.
    """

    MARGIN = timedelta(minutes=5)  # a token this close to expiry is renewed: a long fetch must not outlive it

    def __init__(self, signing_url: str, policy: HttpPolicy, service: Service, subscription_key: str = "") -> None:
        self.signing_url = signing_url
        self.policy = policy
        self.service = service
        self.subscription_key = subscription_key or os.environ.get("PC_SDK_SUBSCRIPTION_KEY", "")
        self._tokens: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def token(self, collection: str) -> str:
        """A valid SAS token (a URL query string) for ``collection``."""
        with self._lock:
            cached = self._tokens.get(collection)
            if cached is not None and cached[1] - self.MARGIN > datetime.now(timezone.utc):
                return cached[0]
            url = self.signing_url.replace("{collection}", urllib.parse.quote(collection))
            headers = {"Ocp-Apim-Subscription-Key": self.subscription_key} if self.subscription_key else {}
            answer = request_json("GET", url, self.policy, self.service, headers=headers)
            token, expiry = _token_of(answer, url, self.service)
            self._tokens[collection] = (token, expiry)
            return token

    def sign(self, href: str, collection: str) -> str:
        """``href`` with the collection's token appended (an href already carrying ``sig=`` is kept)."""
        if not href.lower().startswith(("http://", "https://")) or "sig=" in href:
            return href
        separator = "&" if urllib.parse.urlsplit(href).query else "?"
        return f"{href}{separator}{self.token(collection)}"


def _token_of(answer: Any, url: str, service: Service) -> tuple[str, datetime]:
    from ..io.timestamps import parse_datetime

    if not isinstance(answer, dict) or not answer.get("token"):
        raise GlacierFlowError(f"The token service {url} gave no SAS token: check the token URL. {service.auth_hint}")
    try:
        expiry = parse_datetime(str(answer.get("msft:expiry", "")))
    except (GlacierFlowError, ValueError):
        expiry = datetime.now(timezone.utc) + SasSigner.MARGIN * 2  # unknown expiry: ask again soon
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=timezone.utc)
    return str(answer["token"]).lstrip("?"), expiry
