"""Offline regions from the bundled GeoLite2 City file (data of 2018-07-03).

The expected places are what that file really says; a newer database may move
some of them, which is why these tests pin the bundled one explicitly.
"""

from __future__ import annotations

import threading
from datetime import date

import pytest

from meiqia.services import geoip
from meiqia.services.geoip import MaxMindResolver
from meiqia.services.geoip import Region
from meiqia.services.geoip import get_resolver
from meiqia.services.geoip import set_resolver


@pytest.fixture(scope="module")
def bundled() -> MaxMindResolver:
    return MaxMindResolver()


@pytest.mark.parametrize(
    ("ip", "country", "province", "city", "label"),
    [
        ("114.114.114.114", "中国", "江苏", "南京", "江苏 南京"),  # "江苏省" in the file
        ("223.5.5.5", "中国", "浙江", "杭州", "浙江 杭州"),
        ("180.76.76.76", "中国", "北京", "北京", "北京"),  # not "北京 北京"
        ("58.60.0.1", "中国", "广东", "深圳", "广东 深圳"),  # "深圳市" in the file
        ("240e:e9:6002::1", "中国", "", "", "中国"),  # IPv6, country only
        ("::ffff:114.114.114.114", "中国", "江苏", "南京", "江苏 南京"),  # IPv4-mapped
        ("8.8.8.8", "美国", "", "", "美国"),
        ("2001:4860:4860::8888", "美国", "加利福尼亚州", "芒廷维尤", "美国"),
        ("203.198.7.66", "香港", "Central and Western District", "Central", "香港"),
        ("81.2.69.160", "英国", "英格兰", "Willesden", "英国"),  # no zh-CN city: English
    ],
)
def test_public_addresses(bundled, ip, country, province, city, label):
    region = bundled.lookup(ip)
    assert (region.country, region.province, region.city) == (country, province, city)
    assert region.label == label and not region.private


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "10.0.0.1", "192.168.1.20", "172.16.5.4", "100.64.0.1", "::1",
           "fe80::1", "fd00::1", "169.254.1.1", "0.0.0.0", " 10.0.0.1 "],
)
def test_private_addresses_are_lan(bundled, ip):
    region = bundled.lookup(ip)
    assert region.private and region.label == "内网"
    assert (region.country, region.province, region.city) == ("", "", "")


@pytest.mark.parametrize("ip", ["not-an-ip", "", "999.1.1.1", "1.2.3", "::g", None, 3232235777])
def test_invalid_input_gives_an_empty_region(bundled, ip):
    assert bundled.lookup(ip) == Region() and bundled.lookup(ip).label == ""


def test_unknown_public_address_is_empty_not_lan(bundled):
    # 2a10::/16 was allocated to RIPE after the 2018 file was built: global, unknown.
    region = bundled.lookup("2a10::1")
    assert region == Region() and region.label == "" and not region.private
    assert bundled.lookup("198.18.0.1").private  # benchmarking range, not global


def test_english_names():
    resolver = MaxMindResolver(language="en")
    assert resolver.lookup("114.114.114.114") == Region(
        "China", "Jiangsu", "Nanjing", country_code="CN")
    assert resolver.lookup("114.114.114.114").label == "Jiangsu Nanjing"
    assert resolver.lookup("8.8.8.8").label == "United States"


def test_bundled_database_is_from_2018(bundled):
    assert bundled.build_date() == date(2018, 7, 3)


def test_lookups_are_cached_and_thread_safe():
    resolver = MaxMindResolver()
    ips = ["114.114.114.114", "8.8.8.8", "223.5.5.5", "10.0.0.1"] * 50
    results: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        labels = [resolver.lookup(ip).label for ip in ips]
        with lock:
            results.extend(labels)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("江苏 南京") == 8 * 50 and results.count("内网") == 8 * 50
    assert resolver.lookup("8.8.8.8") is resolver.lookup("8.8.8.8")


def test_configured_database_path(tmp_path):
    from _maxminddb_geolite2 import geolite2_database

    assert MaxMindResolver(geolite2_database()).lookup("8.8.8.8").country == "美国"
    with pytest.raises(FileNotFoundError):
        MaxMindResolver(tmp_path / "missing.mmdb")


def test_a_corrupt_database_gives_empty_regions_not_errors(tmp_path, caplog):
    path = tmp_path / "corrupt.mmdb"
    path.write_bytes(b"this is not a maxmind database" * 100)
    resolver = MaxMindResolver(path)
    assert resolver.lookup("8.8.8.8") == Region()
    assert resolver.lookup("1.1.1.1") == Region()  # logged once, not retried
    assert resolver.lookup("10.0.0.1").private
    assert len([r for r in caplog.records if "unusable" in r.getMessage()]) == 1


class _FixedResolver:
    """A drop-in resolver, as a deployment with its own database would write."""

    def lookup(self, ip: str) -> Region:
        return Region("中国", "上海", "上海", country_code="CN")


def test_set_resolver_and_configure(tmp_path, monkeypatch):
    monkeypatch.delenv("MEIQIA_GEOIP_DATABASE", raising=False)
    original = get_resolver()
    try:
        set_resolver(_FixedResolver())
        assert get_resolver().lookup("8.8.8.8").label == "上海"
        set_resolver(None)
        default = get_resolver()
        assert isinstance(default, MaxMindResolver) and get_resolver() is default
        from _maxminddb_geolite2 import geolite2_database

        geoip.configure({"GEOIP_DATABASE": geolite2_database()})
        assert get_resolver().path == geolite2_database()
        with pytest.raises(FileNotFoundError):
            geoip.configure({"GEOIP_DATABASE": str(tmp_path / "nope.mmdb")})
        geoip.configure({})
        assert get_resolver().path is None
    finally:
        set_resolver(original)


def test_environment_variable_picks_the_database(monkeypatch, tmp_path, caplog):
    from _maxminddb_geolite2 import geolite2_database

    original = get_resolver()
    try:
        monkeypatch.setenv("MEIQIA_GEOIP_DATABASE", geolite2_database())
        set_resolver(None)
        assert get_resolver().path == geolite2_database()
        # Missing file: logged, bundled database used, the visit still gets a region.
        monkeypatch.setenv("MEIQIA_GEOIP_DATABASE", str(tmp_path / "gone.mmdb"))
        set_resolver(None)
        assert get_resolver().path is None
        assert get_resolver().lookup("8.8.8.8").label == "美国"
        assert any("gone.mmdb" in r.getMessage() for r in caplog.records)
    finally:
        set_resolver(original)
