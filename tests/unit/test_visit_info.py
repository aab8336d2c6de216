"""Visit information from real request data: user agents, referrers, client IPs.

Real user-agent strings (including WeChat's and other Chinese in-app browsers that
ua-parser alone misnames), real search-engine referrer URLs with Chinese and GBK
keywords, and forged X-Forwarded-For headers; no mocks.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from meiqia.services.visit_info import SourceInfo
from meiqia.services.visit_info import build_visit_info
from meiqia.services.visit_info import client_ip
from meiqia.services.visit_info import parse_source
from meiqia.services.visit_info import parse_user_agent

LANDING = "https://shop.example.com/p/1"

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"
)
WECHAT_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; V2309A Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160117 "
    "MMWEBSDK/20231202 MMWEBID/2247 MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64 "
    "Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)
WECHAT_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148 MicroMessenger/8.0.44(0x18002c2b) NetType/WIFI Language/zh_CN"
)
WECOM_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/86.0.4240.198 Safari/537.36 wxwork/4.1.16 MicroMessenger/7.0.1 Language/zh "
    "ColorScheme/Light"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SAMSUNG_PHONE = (
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
)
CUBOT_PHONE = (  # a phone brand with "bot" in its name
    "Mozilla/5.0 (Linux; Android 11; CUBOT KINGKONG 5 Pro) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
)
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)"
)
BAIDUSPIDER = "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)"
QQ_BROWSER = (
    "Mozilla/5.0 (Linux; U; Android 12; zh-cn; PEHM00 Build/SKQ1.210216.001) AppleWebKit/"
    "537.36 (KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 MQQBrowser/14.2 Mobile "
    "Safari/537.36 COVC/046701"
)
UC_BROWSER = (
    "Mozilla/5.0 (Linux; U; Android 12; zh-CN; 2201122C Build/SKQ1.211006.001) AppleWebKit/"
    "537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.58 UCBrowser/15.5.8.1325 "
    "Mobile Safari/537.36"
)
BAIDU_APP = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148 SP-engine/2.80.0 main%2F1.0 baiduboxapp/13.38.0.10 (Baidu; "
    "P2 16.5) NABar/1.0"
)
ALIPAY = (
    "Mozilla/5.0 (Linux; U; Android 13; zh-CN; V2227A Build/TP1A.220624.014) AppleWebKit/"
    "537.36 (KHTML, like Gecko) Version/4.0 Chrome/69.0.3497.100 UWS/3.22.2.59 Mobile "
    "Safari/537.36 AliApp(AP/10.5.36.8100) AlipayClient/10.5.36.8100 Language/zh-Hans"
)
DINGTALK_MAC = (  # ua-parser alone calls this "Apple Mail 605"
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) DingTalk(7.0.40-macOS-macOS-MAS-28361386) nw Channel/201200 language/zh-CN"
)


@pytest.mark.parametrize(
    ("ua", "device", "os_", "browser", "platform"),
    [
        (CHROME_WINDOWS, "pc", "Windows 10", "Chrome 120", "pc_web"),
        (SAFARI_IPHONE, "mobile (iPhone)", "iOS 17.2", "Safari 17", "mobile_web"),
        (WECHAT_ANDROID, "mobile (V2309A)", "Android 14", "WeChat 8.0", "mobile_web"),
        (WECHAT_IPHONE, "mobile (iPhone)", "iOS 17.1", "WeChat 8.0", "mobile_web"),
        (WECOM_WINDOWS, "pc", "Windows 10", "WeCom 4.1", "pc_web"),
        (IPAD, "tablet (iPad)", "iOS 16.6", "Safari 16", "mobile_web"),
        (ANDROID_TABLET, "tablet (SM-X700)", "Android 13", "Chrome 120", "mobile_web"),
        (SAMSUNG_PHONE, "mobile (Samsung SM-S918B)", "Android 13", "Chrome 120", "mobile_web"),
        (CUBOT_PHONE, "mobile (Cubot KINGKONG 5 Pro)", "Android 11", "Chrome 120",
         "mobile_web"),
        (EDGE, "pc", "Windows 10", "Edge 120", "pc_web"),
        (FIREFOX_LINUX, "pc", "Linux", "Firefox 121", "pc_web"),
        (CHROME_MAC, "pc", "macOS", "Chrome 120", "pc_web"),
        (GOOGLEBOT, "bot", "", "Googlebot 2", "pc_web"),
        (GOOGLEBOT_SMARTPHONE, "bot", "Android 6", "Googlebot 2", "mobile_web"),
        (BAIDUSPIDER, "bot", "", "Baiduspider 2", "pc_web"),
        (QQ_BROWSER, "mobile (Oppo PEHM00)", "Android 12", "QQ Browser 14.2", "mobile_web"),
        (UC_BROWSER, "mobile", "Android 12", "UC Browser 15.5", "mobile_web"),
        (BAIDU_APP, "mobile (iPhone)", "iOS 16.5", "Baidu App 13.38", "mobile_web"),
        (ALIPAY, "mobile", "Android 13", "Alipay 10.5", "mobile_web"),
        (DINGTALK_MAC, "pc", "macOS", "DingTalk 7.0", "pc_web"),
        ("curl/8.4.0", "other", "", "curl 8", "pc_web"),
        ("", "other", "", "", "pc_web"),
    ],
)
def test_user_agents(ua, device, os_, browser, platform):
    info = parse_user_agent(ua)
    assert (info.device, info.os, info.browser, info.platform) == (
        device, os_, browser, platform)
    assert info.device_type == device.split(" ")[0]


def test_user_agent_none_and_huge_are_harmless():
    assert parse_user_agent(None).device == "other"
    info = parse_user_agent(CHROME_WINDOWS + " x" * 10_000)
    assert info.browser == "Chrome 120" and len(info.device) <= 80


def test_user_agent_results_are_cached():
    assert parse_user_agent(EDGE) is parse_user_agent(EDGE)


@pytest.mark.parametrize(
    ("referrer", "engine", "keyword"),
    [
        ("https://www.baidu.com/s?wd=%E9%80%80%E6%AC%BE", "Baidu", "退款"),
        ("https://www.baidu.com/s?ie=utf-8&f=8&rsv_bp=1&wd=%E9%80%80%E6%AC%BE+%E6%B5%81%E7%A8%8B",
         "Baidu", "退款 流程"),
        ("https://m.baidu.com/s?word=%E5%8F%91%E7%A5%A8", "Baidu", "发票"),
        ("https://m.baidu.com/from=844b/s?kw=%E5%8F%91%E7%A5%A8", "Baidu", "发票"),
        # GBK declared by ie=, and GBK undeclared (not valid UTF-8, so GBK is tried).
        ("https://www.baidu.com/s?ie=gbk&wd=" + quote("退款".encode("gbk")), "Baidu", "退款"),
        ("http://www.baidu.com/s?ie=gb2312&wd=" + quote("发货时间".encode("gb2312")), "Baidu",
         "发货时间"),
        ("https://www.baidu.com/s?wd=" + quote("尺码表".encode("gbk")), "Baidu", "尺码表"),
        ("https://www.sogou.com/web?ie=gbk&query=" + quote("退货".encode("gbk")), "Sogou",
         "退货"),
        ("https://www.baidu.com/link?url=Qd8dGzFk0x", "Baidu", ""),
        ("https://www.google.com/search?q=refund+policy&oq=refund", "Google", "refund policy"),
        ("https://www.google.com.hk/search?q=%E9%80%80%E6%AC%BE", "Google", "退款"),
        ("https://www.google.com.hk/", "Google", ""),
        ("https://www.google.de/", "Google", ""),
        ("android-app://com.google.android.googlequicksearchbox/", "Google", ""),
        ("https://cn.bing.com/search?q=%E9%80%80%E8%B4%A7&form=QBLH", "Bing", "退货"),
        ("https://www.bing.com/search?q=a%2Bb", "Bing", "a+b"),
        ("https://www.sogou.com/web?query=%E5%B0%BA%E7%A0%81", "Sogou", "尺码"),
        ("https://m.sogou.com/web/searchList.jsp?keyword=%E5%B0%BA%E7%A0%81", "Sogou", "尺码"),
        ("https://www.so.com/s?q=%E5%BF%AB%E9%80%92&src=srp", "360", "快递"),
        ("https://m.sm.cn/s?q=%E4%BC%98%E6%83%A0", "Shenma", "优惠"),
        ("https://yz.m.sm.cn/s?q=%E4%BC%98%E6%83%A0", "Shenma", "优惠"),
        ("https://search.yahoo.com/search?p=customer+service", "Yahoo", "customer service"),
        ("https://search.yahoo.co.jp/search?p=%E8%BF%94%E5%93%81", "Yahoo", "返品"),
        ("https://duckduckgo.com/?q=%E9%80%80%E6%AC%BE&ia=web", "DuckDuckGo", "退款"),
        ("https://yandex.ru/search/?text=%D0%B2%D0%BE%D0%B7%D0%B2%D1%80%D0%B0%D1%82", "Yandex",
         "возврат"),
        ("https://so.toutiao.com/search?keyword=%E5%94%AE%E5%90%8E&pd=synthesis", "Toutiao",
         "售后"),
        ("https://www.baidu.com/s?wd=%E9%80%80%00%E6%AC%BE%E3%80%80", "Baidu", "退 款"),
    ],
)
def test_search_engines_and_keywords(referrer, engine, keyword):
    assert parse_source(referrer, LANDING) == SourceInfo("search_engine", engine, keyword)


@pytest.mark.parametrize(
    ("referrer", "landing", "source"),
    [
        ("https://weibo.com/some/post", LANDING, "link"),
        ("https://tieba.baidu.com/f?kw=%E9%80%80%E6%AC%BE", LANDING, "link"),  # a forum
        ("https://baike.baidu.com/item/x", LANDING, "link"),
        ("https://mail.google.com/mail/u/0/", LANDING, "link"),
        ("https://notso.com/?q=x", LANDING, "link"),  # not 360's so.com
        ("https://blog.example.com/post", LANDING, "link"),  # another subdomain
        ("https://www.baidu.com/s?wd=x", None, "search_engine"),
        ("https://weibo.com/", None, "link"),
        ("https://shop.example.com/cart", LANDING, "direct"),
        ("https://SHOP.example.com:8443/cart", LANDING, "direct"),
        ("https://www.example.com/", "https://example.com/p", "direct"),
        ("", LANDING, "direct"),
        (None, LANDING, "direct"),
        ("   ", None, "direct"),
        ("http://[broken/", LANDING, "direct"),
    ],
)
def test_sources(referrer, landing, source):
    info = parse_source(referrer, landing)
    assert info.source == source
    if source != "search_engine":
        assert (info.search_engine, info.keyword) == ("", "")


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        # 0 trusted proxies: the header is the client's word, ignored.
        ("203.0.113.9", "1.2.3.4", 0, "203.0.113.9"),
        # 1 proxy: it appended the real client; the client's own entry is forged.
        ("10.0.0.2", "6.6.6.6, 1.2.3.4", 1, "1.2.3.4"),
        ("10.0.0.2", "1.2.3.4", 1, "1.2.3.4"),
        # 2 proxies: CDN then nginx; the CDN saw 1.2.3.4.
        ("10.0.0.2", "6.6.6.6, 1.2.3.4, 172.16.0.5", 2, "1.2.3.4"),
        ("10.0.0.2", "1.2.3.4, 5.6.7.8", 2, "1.2.3.4"),
        # Fewer entries than proxies: not through the configured path, use the socket.
        ("10.0.0.2", "1.2.3.4", 2, "10.0.0.2"),
        ("10.0.0.2", None, 1, "10.0.0.2"),
        ("10.0.0.2", "", 1, "10.0.0.2"),
        # Garbage where the client should be: use the socket.
        ("10.0.0.2", "garbage", 1, "10.0.0.2"),
        ("10.0.0.2", "1.2.3.4, <script>", 1, "10.0.0.2"),
        # Ports and brackets some proxies add, IPv6.
        ("10.0.0.2", "1.2.3.4:5678", 1, "1.2.3.4"),
        ("10.0.0.2", "[2001:db8::1]:443", 1, "2001:db8::1"),
        ("10.0.0.2", "2001:DB8::1", 1, "2001:db8::1"),
        (None, None, 0, ""),
    ],
)
def test_client_ip_trusts_only_the_configured_proxies(remote, forwarded, trusted, expected):
    assert client_ip(remote, forwarded, trusted) == expected


def test_build_visit_info_has_every_visit_field():
    info = build_visit_info("114.114.114.114", WECHAT_ANDROID,
                            "https://www.baidu.com/s?wd=%E9%80%80%E6%AC%BE", LANDING)
    assert info == {
        "ip": "114.114.114.114",
        "region": "江苏 南京",
        "country": "中国",
        "province": "江苏",
        "city": "南京",
        "user_agent": WECHAT_ANDROID,
        "device": "mobile (V2309A)",
        "os": "Android 14",
        "browser": "WeChat 8.0",
        "platform": "mobile_web",
        "landing_page": LANDING,
        "referrer": "https://www.baidu.com/s?wd=%E9%80%80%E6%AC%BE",
        "source": "search_engine",
        "search_engine": "Baidu",
        "search_keyword": "退款",
    }


def test_build_visit_info_fits_the_columns_and_drops_nul():
    long_url = "https://shop.example.com/?" + "a" * 5000
    info = build_visit_info("x" * 100, "Mozilla/5.0\x00" + "y" * 5000, long_url + "\x00",
                            long_url)
    assert len(info["ip"]) == 45 and info["region"] == ""
    assert len(info["user_agent"]) == 1000 and "\x00" not in info["user_agent"]
    assert len(info["referrer"]) == 2000 and len(info["landing_page"]) == 2000
    assert info["source"] == "direct"
    empty = build_visit_info("", None, None, None)
    assert (empty["source"], empty["platform"], empty["region"]) == ("direct", "pc_web", "")
