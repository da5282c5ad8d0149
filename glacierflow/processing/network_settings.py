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


CACHE_FOLDER_KEY = "glacierflow/cache_folder"  # empty: ~/.cache/glacierflow/imagery (or $GLACIERFLOW_CACHE)
CACHE_LIMIT_KEY = "glacierflow/cache_limit_gb"  # the scene cache's size limit, GB; least recently used evicted


def apply_cache_settings() -> None:
    """Give core's scene cache the folder and size limit of the plugin's settings (QGIS profile)."""
    from ..core.imagery.base import DEFAULT_CACHE_LIMIT_BYTES, configure_cache

    settings = QgsSettings()
    folder = str(settings.value(CACHE_FOLDER_KEY, "") or "").strip()
    try:
        limit_gb = float(settings.value(CACHE_LIMIT_KEY, DEFAULT_CACHE_LIMIT_BYTES / 1024 ** 3))
    except (TypeError, ValueError):
        limit_gb = DEFAULT_CACHE_LIMIT_BYTES / 1024 ** 3
    configure_cache(folder, int(max(limit_gb, 0.0) * 1024 ** 3))
