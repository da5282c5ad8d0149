"""QGIS's network settings for a job: the proxy of Settings > Options > Network, for core's network layer."""
from __future__ import annotations

from qgis.core import QgsSettings

from ..core.imagery.network import ProxySettings, excluded_hosts

_SCHEMES = {"HttpProxy": "http", "HttpCachingProxy": "http", "Socks5Proxy": "socks5"}


def qgis_proxy() -> ProxySettings | None:
    """The proxy QGIS is set to use, or None (none set, or "default proxy": the system's, which the environment
    already gives)."""
    settings = QgsSettings()
    if not settings.value("proxy/proxyEnabled", False, type=bool):
        return None
    scheme = _SCHEMES.get(str(settings.value("proxy/proxyType", "")))
    host = str(settings.value("proxy/proxyHost", "") or "").strip()
    if scheme is None or not host:
        return None
    port = int(settings.value("proxy/proxyPort", 0, type=int) or (1080 if scheme == "socks5" else 8080))
    excluded = str(settings.value("proxy/proxyExcludedUrls", "") or "").split("|") + \
        str(settings.value("proxy/noProxyUrls", "") or "").split("|")
    return ProxySettings(host, port, scheme, str(settings.value("proxy/proxyUser", "") or ""),
                         str(settings.value("proxy/proxyPassword", "") or ""), excluded_hosts(excluded))
