"""The proxy a job's network requests go through: urllib (STAC), httplib2 (Earth Engine) and GDAL (/vsicurl/).

QGIS keeps its proxy in its own settings, which none of these libraries read. :func:`using_proxy` applies one
for the length of a job: the standard ``http_proxy``/``https_proxy``/``no_proxy`` environment variables (read
by urllib at every request of :mod:`.stac_client`, and by httplib2) and GDAL's ``GDAL_HTTP_PROXY`` options;
everything is put back afterwards.
"""
from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_ENV_KEYS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY")
_GDAL_KEYS = ("GDAL_HTTP_PROXY", "GDAL_HTTPS_PROXY", "GDAL_HTTP_PROXYUSERPWD")


@dataclass(frozen=True)
class ProxySettings:
    """A proxy: ``scheme`` (http or socks5), host, port, optional user and password, and the hosts reached
    directly (``excluded``)."""

    host: str
    port: int
    scheme: str = "http"
    user: str = ""
    password: str = ""
    excluded: tuple[str, ...] = ()

    def url(self, with_credentials: bool = True) -> str:
        """``scheme://[user:password@]host:port``."""
        credentials = ""
        if with_credentials and self.user:
            quote = urllib.parse.quote
            credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return f"{self.scheme}://{credentials}{self.host}:{self.port}"


def excluded_hosts(urls: Sequence[str]) -> tuple[str, ...]:
    """Host names of QGIS's excluded URL prefixes ("https://internal.example.com/..." -> internal.example.com)."""
    hosts = []
    for url in urls:
        url = url.strip()
        if url:
            hosts.append(urllib.parse.urlsplit(url if "://" in url else "//" + url).hostname or url)
    return tuple(hosts)


@contextlib.contextmanager
def using_proxy(proxy: ProxySettings | None) -> Iterator[None]:
    """Route the job's HTTP requests through ``proxy`` (None: change nothing) while inside."""
    if proxy is None:
        yield
        return
    saved_env = {key: os.environ.get(key) for key in _ENV_KEYS}
    gdal = _gdal()
    saved_gdal = {key: gdal.GetConfigOption(key) for key in _GDAL_KEYS} if gdal else {}
    url = proxy.url()
    no_proxy = ",".join(filter(None, (saved_env["no_proxy"] or saved_env["NO_PROXY"] or "",) + proxy.excluded))
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        os.environ[key] = url
    for key in ("no_proxy", "NO_PROXY"):
        if no_proxy:
            os.environ[key] = no_proxy
        else:
            os.environ.pop(key, None)
    if gdal:
        address = proxy.url(with_credentials=False)
        address = address if proxy.scheme != "http" else f"{proxy.host}:{proxy.port}"
        gdal.SetConfigOption("GDAL_HTTP_PROXY", address)
        gdal.SetConfigOption("GDAL_HTTPS_PROXY", address)
        gdal.SetConfigOption("GDAL_HTTP_PROXYUSERPWD", f"{proxy.user}:{proxy.password}" if proxy.user else None)
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for key, value in saved_gdal.items():
            gdal.SetConfigOption(key, value)


def _gdal() -> Any:
    try:
        from osgeo import gdal
    except ImportError:  # pragma: no cover - GDAL comes with QGIS
        return None
    return gdal
