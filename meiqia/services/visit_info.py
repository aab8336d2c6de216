"""Where a visitor comes from: device, OS, browser, platform, region, source, keyword.

Pure functions over what the browser sends (user agent, referrer, landing page)
and the connection's address; no Flask, no database, so they are cheap to test
and safe to call on the widget's request path. The region comes from an offline
database behind ``RegionResolver`` (``geoip.py``) so a better one can be dropped in.

User agents are parsed with ``ua-parser`` (about 0.75 ms for an unseen string, so
results are cached), then corrected for what it does not know: the in-app browsers
of WeChat, WeCom, QQ, DingTalk, Alipay, Baidu and others, which are how most
Chinese mobile visitors arrive.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes
from urllib.parse import urlsplit

from meiqia.services.geoip import get_resolver

PC_WEB = "pc_web"
MOBILE_WEB = "mobile_web"

# --------------------------------------------------------------------------- UA


@dataclass(frozen=True)
class UserAgentInfo:
    #: Display label stored on the Visit: the type, plus the model when known,
    #: e.g. 'pc', 'mobile (iPhone)', 'mobile (Samsung SM-S918B)', 'tablet (iPad)', 'bot'.
    device: str
    #: 'Windows 10', 'iOS 17.2', 'Android 14', 'macOS', 'Linux', '' when unknown.
    os: str
    #: 'Chrome 120', 'Safari 17', 'WeChat 8.0', '' when unknown.
    browser: str
    #: 'pc_web' or 'mobile_web' (phones and tablets).
    platform: str
    #: 'pc', 'mobile', 'tablet', 'bot' or 'other'.
    device_type: str = "other"
    #: Brand and model when the user agent names them, else ''.
    device_model: str = ""


#: In-app browsers ua-parser misnames (as "Chrome Mobile WebView", "Apple Mail"...),
#: checked in order: WeCom's UA also says MicroMessenger, QQ's also says MQQBrowser.
_IN_APP = [
    (re.compile(p, re.IGNORECASE), name)
    for p, name in (
        (r"wxwork/(\d+)(?:\.(\d+))?", "WeCom"),
        (r"MicroMessenger/(\d+)(?:\.(\d+))?", "WeChat"),
        (r"DingTalk[/(](\d+)(?:\.(\d+))?", "DingTalk"),
        (r"AlipayClient/(\d+)(?:\.(\d+))?", "Alipay"),
        (r"\bQQ/(\d+)(?:\.(\d+))?", "QQ"),
        (r"M?QQBrowser/(\d+)(?:\.(\d+))?", "QQ Browser"),
        (r"UCBrowser/(\d+)(?:\.(\d+))?", "UC Browser"),
        (r"baiduboxapp/(\d+)(?:\.(\d+))?", "Baidu App"),
        (r"Quark/(\d+)(?:\.(\d+))?", "Quark"),
        (r"aweme(?:_lite)?/(\d+)(?:\.(\d+))?", "Douyin"),
        (r"NewsArticle/(\d+)(?:\.(\d+))?", "Toutiao"),
        (r"__weibo__(\d+)(?:\.(\d+))?", "Weibo"),
    )
]

#: ua-parser family → the name we show; the platform already says "mobile".
_BROWSER_NAMES = {
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari WebView",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Android WebView",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "QQ Browser Mobile": "QQ Browser",
    "Samsung Internet": "Samsung Internet",
    "WeChat Browser": "WeChat",
}

_OS_NAMES = {"Mac OS X": "macOS"}

#: Bots that ua-parser's "Spider" device misses: "name/1.0" or a "+http" info URL.
_BOT = re.compile(r"(?:bot|spider|crawler)/\d|\+https?://|^python-|^go-http|^java/",
                  re.IGNORECASE)
_TABLET = re.compile(r"ipad|tablet|kindle|silk/|playbook|\bpad\b", re.IGNORECASE)
_MOBILE = re.compile(r"mobi|iphone|ipod|android|phone|harmonyos|windows ce", re.IGNORECASE)
#: Brands/models that say nothing ("Generic Smartphone", a spider's "Desktop").
_VAGUE_BRANDS = {"", "Generic", "Generic_Android", "Generic_Android_Tablet", "Spider",
                 "Generic_Inettv"}
_VAGUE_MODELS = {"", "Smartphone", "Feature Phone", "Tablet", "Desktop", "Browser", "Mac",
                 "K"}  # "K": Chrome's reduced UA ("Android 10; K") hides the model


def _version(*parts: str | None) -> str:
    """' 17.2' from ('17', '2'); a trailing '.0' is dropped; '' without a major."""
    if not parts or not parts[0]:
        return ""
    if len(parts) > 1 and parts[1] and parts[1] != "0":
        return f" {parts[0]}.{parts[1]}"
    return f" {parts[0]}"


def _clip(text: str, limit: int = 80) -> str:
    return text[:limit].strip()


@lru_cache(maxsize=4096)
def _parse(ua: str) -> UserAgentInfo:
    from ua_parser import parse

    if not ua.strip():
        return UserAgentInfo("other", "", "", PC_WEB, "other", "")
    result = parse(ua)
    agent, os_, device = result.user_agent, result.os, result.device

    # Form factor first: it decides the platform, even for a bot.
    device_family = device.family if device else ""
    brand = (device.brand or "") if device else ""
    if _TABLET.search(ua) or brand == "Generic_Android_Tablet" or (
        "android" in ua.lower() and "mobile" not in ua.lower()
    ):
        form = "tablet"
    elif _MOBILE.search(ua):
        form = "mobile"
    else:
        form = "pc"

    os_name = ""
    if "openharmony" in ua.lower() or "harmonyos" in ua.lower():
        os_name = "HarmonyOS"
    elif os_ and os_.family != "Other":
        family = _OS_NAMES.get(os_.family, os_.family)
        if family == "macOS":
            # Every current browser freezes the version at 10.15.7: it means nothing.
            os_name = family
        elif family == "Windows":
            os_name = family + _version(os_.major)  # Windows 11 also says "10"
        else:
            os_name = family + _version(os_.major, os_.minor)

    if device_family == "Spider" or _BOT.search(ua):
        kind = "bot"
    elif not os_name and form == "pc" and not ua.startswith(("Mozilla/", "Opera/")):
        kind = "other"  # curl, libraries, apps that do not say what they run on
    else:
        kind = form

    browser = ""
    for pattern, name in _IN_APP:
        match = pattern.search(ua)
        if match:
            # Apps are known by major.minor ("WeChat 8.0"), even when minor is 0.
            major, minor = match.group(1), match.group(2)
            browser = f"{name} {major}.{minor}" if minor else f"{name} {major}"
            break
    if not browser and agent and agent.family != "Other":
        family = _BROWSER_NAMES.get(agent.family, agent.family)
        browser = family + _version(agent.major)

    model = ""
    if device and kind in {"mobile", "tablet"}:
        model_name = device.model or ""
        brand_name = brand if brand not in _VAGUE_BRANDS else ""
        if model_name in _VAGUE_MODELS:
            model_name = ""
        if brand_name == "Apple" or (brand_name and model_name.startswith(brand_name)):
            brand_name = ""  # "iPhone", not "Apple iPhone"
        model = " ".join(p for p in (brand_name, model_name) if p)
    label = f"{kind} ({model})" if model else kind

    platform = MOBILE_WEB if form in {"mobile", "tablet"} else PC_WEB
    return UserAgentInfo(
        device=_clip(label), os=_clip(os_name), browser=_clip(browser), platform=platform,
        device_type=kind, device_model=_clip(model, 60),
    )


def parse_user_agent(ua: str | None) -> UserAgentInfo:
    """Device type and model, OS, browser and platform of a User-Agent header.

    Cached (4096 strings): the same few hundred user agents make most visits.
    Known blind spot: iPadOS Safari asks for desktop sites by default and then
    sends a Mac user agent, so such iPads count as 'pc' / 'macOS'.
    """
    return _parse((ua or "")[:512])


# ---------------------------------------------------------------------- source


@dataclass(frozen=True)
class SourceInfo:
    #: 'direct', 'link' or 'search_engine'.
    source: str
    #: 'Baidu', 'Google', ... for search_engine, else ''.
    search_engine: str
    #: The search words, decoded; '' when the engine did not pass them on.
    keyword: str


#: (engine, host pattern, keyword parameters in order of preference). Hosts are
#: listed exactly: tieba.baidu.com (kw= is a forum), mail.google.com, baike.baidu.com
#: are links, not searches.
_ENGINES: list[tuple[str, re.Pattern[str], tuple[str, ...]]] = [
    (name, re.compile(rf"(?:{hosts})\Z"), params)
    for name, hosts, params in (
        ("Baidu", r"(?:www\.|m\.|wap\.|sp\d\.)?baidu\.com|com\.baidu\.searchbox",
         ("wd", "word", "kw")),
        ("Google", r"(?:www\.|m\.)?google\.(?:com|[a-z]{2}|co\.[a-z]{2}|com\.[a-z]{2})"
         r"|com\.google\.android\.googlequicksearchbox", ("q",)),
        ("Bing", r"(?:www\.|cn\.|global\.|m\.)?bing\.com", ("q",)),
        ("Sogou", r"(?:www\.|m\.|wap\.)?sogou\.com", ("query", "keyword")),
        ("360", r"(?:www\.|m\.)?so\.com", ("q",)),
        ("Shenma", r"(?:[a-z0-9-]+\.)*sm\.cn", ("q",)),
        ("Yahoo", r"(?:[a-z]{2}\.|r\.)?search\.yahoo\.(?:com|co\.jp)", ("p",)),
        ("DuckDuckGo", r"(?:html\.|lite\.)?duckduckgo\.com", ("q",)),
        ("Yandex", r"(?:www\.)?yandex\.(?:ru|com|by|kz|ua|com\.tr)|ya\.ru", ("text",)),
        ("Toutiao", r"so\.toutiao\.com", ("keyword",)),
    )
]

#: Parameters that declare the query's encoding (Baidu's and Sogou's ``ie``).
_ENCODING_PARAMS = {"ie", "inputencoding", "enc"}
_GBK_NAMES = {"gbk", "gb2312", "gb18030", "cp936"}


def _host(url: str | None) -> str:
    """Lower-case host of ``url`` without a leading 'www.'; '' when there is none."""
    if not url:
        return ""
    url = url.strip()
    if "://" not in url and not url.startswith("//"):
        url = "//" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # e.g. "http://[broken"
        return ""
    return host.rstrip(".").removeprefix("www.")


def _raw_params(query: str) -> dict[str, str]:
    """First value of each parameter, still percent-encoded (so GBK survives)."""
    params: dict[str, str] = {}
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        if sep and value:
            params.setdefault(key.lower(), value)
    return params


def _decode(raw: str, gbk: bool) -> str:
    data = unquote_to_bytes(raw.replace("+", " "))
    text = None
    for encoding in ("gb18030", "utf-8") if gbk else ("utf-8", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        text = data.decode("utf-8", "replace")
    # No control characters (a NUL breaks PostgreSQL), whitespace collapsed.
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return " ".join(text.split())


def parse_source(referrer: str | None, landing_url: str | None) -> SourceInfo:
    """direct / link / search_engine, with the engine and keyword when known.

    No referrer, or one on the landing page's own host ('www.' ignored) → direct;
    a known search engine → search_engine, with the keyword if it is in the URL
    (Google and Baidu's result links usually strip it: keyword ''); anything else
    → link.
    """
    if not referrer or not referrer.strip():
        return SourceInfo("direct", "", "")
    host = _host(referrer)
    if not host or host == _host(landing_url):
        return SourceInfo("direct", "", "")
    for name, hosts, keys in _ENGINES:
        if hosts.match(host):
            try:
                parts = urlsplit(referrer.strip())
            except ValueError:
                return SourceInfo("search_engine", name, "")
            params = _raw_params(parts.fragment)  # old Google put q in the fragment
            params.update(_raw_params(parts.query))
            gbk = any(
                unquote_to_bytes(params.get(p, "")).decode("latin-1").lower() in _GBK_NAMES
                for p in _ENCODING_PARAMS
            )
            for key in keys:
                if params.get(key):
                    keyword = _decode(params[key], gbk)
                    if keyword:
                        return SourceInfo("search_engine", name, keyword)
            return SourceInfo("search_engine", name, "")
    return SourceInfo("link", "", "")


# ------------------------------------------------------------------- client IP


def _clean_ip(value: str | None) -> str | None:
    """The address in ``value`` ('1.2.3.4', '1.2.3.4:5678', '[::1]:80'), or None."""
    if not value:
        return None
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # IPv4 with a port (Azure, some CDNs)
        value = value.partition(":")[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(remote_addr: str | None, forwarded_for: str | None,
              trusted_proxies: int) -> str:
    """The visitor's IP, believing X-Forwarded-For for ``trusted_proxies`` hops only.

    Each trusted proxy appends the address it received the request from, so with
    N proxies the client is the N-th entry from the right; everything left of it
    was written by the client and can be forged. With 0 (the default) the header
    is ignored. A header shorter than N or an unparsable entry means the request
    did not come through the proxies as configured: fall back to the socket.
    """
    fallback = _clean_ip(remote_addr) or (remote_addr or "").strip()[:45]
    if trusted_proxies <= 0 or not forwarded_for:
        return fallback
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    if len(hops) < trusted_proxies:
        return fallback
    return _clean_ip(hops[-trusted_proxies]) or fallback


# ----------------------------------------------------------------------- visit


def _text(value: str | None, limit: int) -> str:
    """Trimmed, NUL-free (PostgreSQL refuses NUL in text) and at most ``limit`` chars."""
    return (value or "").replace("\x00", "").strip()[:limit]


def build_visit_info(ip: str, user_agent: str | None, referrer: str | None,
                     landing_url: str | None) -> dict[str, Any]:
    """Every Visit field derived from the request, in one dict, sized for the columns.

    Keys: ip, region, country, province, city, user_agent, device, os, browser,
    platform, landing_page, referrer, source, search_engine, search_keyword.
    """
    ua = parse_user_agent(_text(user_agent, 2000))
    source = parse_source(_text(referrer, 2000), _text(landing_url, 2000))
    region = get_resolver().lookup(ip or "")
    return {
        "ip": _text(ip, 45),
        "region": _text(region.label, 120),
        "country": _text(region.country, 80),
        "province": _text(region.province, 80),
        "city": _text(region.city, 80),
        "user_agent": _text(user_agent, 1000),
        "device": ua.device,
        "os": ua.os,
        "browser": ua.browser,
        "platform": ua.platform,
        "landing_page": _text(landing_url, 2000),
        "referrer": _text(referrer, 2000),
        "source": source.source,
        "search_engine": source.search_engine,
        "search_keyword": source.keyword[:255],
    }
