"""Offline IP → region, behind one small interface.

Why offline: a visit is recorded when the chat widget opens, on the request path;
calling a web service there would add latency, leak visitor IPs to a third party
and fail with the network. Why an interface: the only freely installable database
with Chinese provinces and cities is the GeoLite2 City file bundled with
``maxminddb-geolite2``, and its data is from July 2018. ``RegionResolver`` is one
method, so a deployment can drop in a current GeoLite2/GeoIP2 file
(``MaxMindResolver(path)``, config key ``GEOIP_DATABASE``) or its own resolver
(e.g. over an ip2region xdb) with ``set_resolver``. See docs/visit-info.md.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from functools import lru_cache
from typing import Any
from typing import Protocol

log = logging.getLogger(__name__)

#: Shown instead of a place for private, loopback, link-local and reserved addresses.
LAN_LABEL = "内网"

#: Countries whose label is "province city" instead of the country name.
_PROVINCIAL = {"CN"}

# Longest first: "广西壮族自治区" must lose the whole suffix, not just "区".
_SUFFIXES = (
    "壮族自治区", "回族自治区", "维吾尔自治区", "特别行政区", "自治区", "自治州", "地区",
    "省", "市",
)


def _short(name: str) -> str:
    """'江苏省' → '江苏', '深圳市' → '深圳', '广西壮族自治区' → '广西'."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class Region:
    """Where an IP is. Empty strings mean unknown; never None."""

    country: str = ""
    province: str = ""
    city: str = ""
    #: ISO 3166-1 alpha-2 ("CN", "US"), "" when unknown.
    country_code: str = ""
    #: A private, loopback, link-local or otherwise non-global address.
    private: bool = False

    @property
    def label(self) -> str:
        """Display string: '江苏 南京' in China, '美国' elsewhere, '内网' for LANs."""
        if self.private:
            return LAN_LABEL
        if self.country_code in _PROVINCIAL or (
            not self.country_code and self.country in {"中国", "China"}
        ):
            parts: list[str] = []
            for part in (self.province, self.city):
                if part and part not in parts:  # Beijing: province 北京, city 北京
                    parts.append(part)
            return " ".join(parts) or self.country
        return self.country


class RegionResolver(Protocol):
    """Anything that maps an IP string to a Region. Must not raise, must be thread-safe."""

    def lookup(self, ip: str) -> Region: ...


def non_global_region(ip: str) -> Region | None:
    """Region() for an invalid IP, a LAN Region for a non-global one, else None.

    Shared by resolvers so they agree on what is not worth a database lookup.
    """
    if not isinstance(ip, str):
        return Region()
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return Region()
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        return Region(private=True)
    return None


def _name(record: Mapping[str, Any] | None, language: str) -> str:
    names = (record or {}).get("names") or {}
    return names.get(language) or names.get("en") or ""


class MaxMindResolver:
    """A GeoLite2/GeoIP2 City ``.mmdb`` file; ``path=None`` uses the bundled 2018 one.

    The file is opened on the first lookup (so importing costs nothing) and once
    only; lookups are cached. ``language`` picks the names ('zh-CN' or 'en'),
    falling back to English where the database has no translation.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 language: str = "zh-CN", cache_size: int = 65536) -> None:
        if path is not None and not os.path.isfile(path):
            # A configured database that is missing is a deployment error: say so now.
            raise FileNotFoundError(f"GeoIP database not found: {path}")
        self.path = os.fspath(path) if path is not None else None
        self.language = language
        self._reader: Any = None
        self._broken = False
        self._lock = threading.Lock()
        self._cached_lookup = lru_cache(maxsize=cache_size)(self._lookup)

    def _open(self) -> Any:
        if self._reader is not None:
            return self._reader
        with self._lock:
            if self._reader is None:
                import maxminddb

                if self.path is None:
                    from _maxminddb_geolite2 import geolite2_database

                    path = geolite2_database()
                else:
                    path = self.path
                self._reader = maxminddb.open_database(path)
            return self._reader

    def lookup(self, ip: str) -> Region:
        """The region of ``ip``; Region() when unknown or invalid. Never raises."""
        if not isinstance(ip, str):
            return Region()
        return self._cached_lookup(ip.strip())

    def _lookup(self, ip: str) -> Region:
        special = non_global_region(ip)
        if special is not None:
            return special
        if self._broken:
            return Region()
        try:
            address = ipaddress.ip_address(ip)
            if address.version == 6 and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            record = self._open().get(str(address)) or {}
        except Exception:  # a broken database must not break a visit
            if not self._broken:
                log.exception("GeoIP database %s unusable; regions left empty",
                              self.path or "(bundled)")
            self._broken = True
            return Region()
        country = record.get("country") or record.get("registered_country") or {}
        subdivisions = record.get("subdivisions") or [{}]
        return Region(
            country=_name(country, self.language),
            province=_short(_name(subdivisions[0], self.language)),
            city=_short(_name(record.get("city"), self.language)),
            country_code=country.get("iso_code") or "",
        )

    def build_date(self) -> date:
        """When the database was built (2018-07-03 for the bundled one)."""
        epoch = self._open().metadata().build_epoch
        return datetime.fromtimestamp(epoch, UTC).date()


_resolver: RegionResolver | None = None
_resolver_lock = threading.Lock()


def _default_resolver() -> MaxMindResolver:
    path = os.environ.get("MEIQIA_GEOIP_DATABASE") or None
    if path:
        try:
            return MaxMindResolver(path)
        except FileNotFoundError:
            # Reached on a visitor's request: recording the visit matters more.
            log.error("MEIQIA_GEOIP_DATABASE=%s does not exist; using the bundled "
                      "2018 database", path)
    return MaxMindResolver()


def get_resolver() -> RegionResolver:
    """The process-wide resolver, created on first use.

    Unless ``set_resolver``/``configure`` chose one, it is a ``MaxMindResolver``
    over ``$MEIQIA_GEOIP_DATABASE`` when that is set, else over the bundled file.
    """
    global _resolver
    if _resolver is None:
        with _resolver_lock:
            if _resolver is None:
                _resolver = _default_resolver()
    return _resolver


def set_resolver(resolver: RegionResolver | None) -> None:
    """Use ``resolver`` from now on; ``None`` goes back to the default."""
    global _resolver
    with _resolver_lock:
        _resolver = resolver


def configure(config: Mapping[str, Any]) -> None:
    """Apply the ``GEOIP_DATABASE`` setting (path to a City .mmdb; empty: bundled).

    Meant for the application factory; a missing file raises FileNotFoundError at
    start-up rather than silently recording no regions.
    """
    path = config.get("GEOIP_DATABASE") or None
    set_resolver(MaxMindResolver(path) if path else None)
