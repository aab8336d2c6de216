"""The values no generator thinks of, thrown at every route (issue 15 item 10).

schemathesis (test_schemathesis.py) draws ordinary valid and invalid data; it
never sends a lone surrogate, a NUL, 20,000-deep nesting or the calendar's last
day. This walks every declared API operation (``web.api.OPERATIONS``, the
source of the OpenAPI document) and every page, and sends each such value in
the body, each query parameter and each path parameter, as the identity the
route is for. The answer is a 4xx (the exact one where the value can only be
refused) or a success, never a 5xx, and no body carries exception text.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from meiqia.web.api import OPERATIONS
from tests.api.test_conversations import start
from tests.helpers import ADMIN_PASSWORD
from tests.helpers import ApiClient

INTERNALS = re.compile(r"Traceback|Error\b|Exception|File \"|\.py\b|/work/|site-packages|"
                       r"invalid literal|int\(\)|NoneType|object has no attribute|<class|"
                       r"surrogates not allowed|codec|OverflowError|out of range")
DEEP = "[" * 20_000 + "]" * 20_000
#: Query values (already URL-encoded): NUL, a surrogate's UTF-8 bytes, bytes that
#: are no UTF-8 at all, the calendar's ends with time-zone shifts, huge numbers.
QUERY_VALUES = ["%00", "%ED%A0%80", "%FF%FE", "0001-01-01", "9999-12-31",
                "9999-12-31T23%3A59%3A59-12%3A00", "0001-01-01T00%3A00%3A00%2B14%3A00",
                "99999999999999999999", "-1", "1e400", "NaN", "abc", "", "%E9%80%80" * 300]
#: Query names some views read without declaring them.
EXTRA_QUERY = ["q", "page", "per_page", "from", "to", "after", "token", "lang", "format",
               "kind", "status", "mine", "assignee_id", "ended_from", "ended_to", "since",
               "until", "days"]


@pytest.fixture
def who(db_api: ApiClient) -> dict[str, Any]:
    """Headers per identity, and a conversation with data to find: on SQLite and on
    PostgreSQL, which refuses what SQLite stores (a NUL, a number past a column)."""
    api = db_api
    api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    token = api.post("/api/v1/tokens", json={"name": "hostile",
                                          "scope": "admin"}).get_json()["token"]
    _, visitor, cid, _ = start(api.app, api.team["id"], name="访客甲")
    return {"admin": {"Authorization": f"Bearer {token}"},
            "visitor": {"X-Visitor-Token": visitor}, "none": {}, "cid": cid}


def identities(auth: str) -> list[str]:
    return {"none": ["none"], "agent": ["admin"], "admin": ["admin"], "visitor": ["visitor"],
            "agent_or_visitor": ["admin", "visitor"]}[auth]


def url_of(rule: str, cid: int, text: str = "x") -> str:
    def repl(match: re.Match) -> str:
        return str(cid) if match.group(1) == "int" else text

    return "/api/v1" + re.sub(r"<(?:(\w+):)?(\w+)>", repl, rule)


def assert_clean(response: Any, where: str) -> None:
    assert response.status_code < 500, (where, response.status_code, response.get_data()[:300])
    if response.mimetype == "application/json" and response.status_code >= 400:
        assert not INTERNALS.search(response.get_data(as_text=True)), (where, response.get_json())


def send(client: Any, method: str, url: str, headers: dict, **kw: Any) -> Any:
    response = client.open(url, method=method, headers=headers, **kw)
    response.close()
    return response


def test_hostile_json_bodies_at_every_operation(db_api, who):
    api = db_api
    client = api.app.test_client()
    with_body = [op for op in OPERATIONS if op.body is not None]
    assert len(with_body) > 30
    for op in with_body:
        for identity in identities(op.auth):
            headers = who[identity]
            url = url_of(op.rule, who["cid"])
            where = f"{op.method.upper()} {op.rule} as {identity}"

            # Operations that refuse API tokens (managing tokens, passwords) are
            # thrown the same values through the admin's own signed-in browser.
            session = identity == "admin" and op.token_scope is None
            target = api.client if session else client
            if session:
                headers = {"X-CSRF-Token": api.csrf}

            def post(raw: str, where: str = where, url: str = url, headers: dict = headers,
                     op: Any = op, target: Any = target) -> Any:
                response = send(target, op.method.upper(), url, headers, data=raw,
                                content_type="application/json")
                assert_clean(response, where)
                return response

            deep = post(DEEP)
            assert deep.status_code == 400, (where, deep.get_json())
            assert deep.get_json()["error"]["code"] == "too_deep"
            for raw in ("NaN", '{"a": Infinity}', '{"a": 1e400}'):
                assert post(raw).status_code == 400, (where, raw)
            assert post('"\\ud800"').status_code == 422
            strings = [name for name, schema in op.body.get("properties", {}).items()]
            for name in strings:
                for bad in ('"\\ud800"', '"x\\u0000y"', '["\\udfff"]', '{"k": "\\udbff"}'):
                    response = post(f'{{{json.dumps(name)}: {bad}}}')
                    error = response.get_json()["error"]
                    assert response.status_code == 422, (where, name, bad, error)
                    assert error["code"] == "invalid" and error["field"].startswith(name), error
                    assert "not text" in error["message"]
            key = post('{"\\ud800": 1}')
            assert key.status_code == 422 and "a key" in key.get_json()["error"]["message"]


def test_hostile_query_and_path_values_at_every_operation(db_api, who):
    """Each declared query parameter alone with each value (a view checks them in
    turn, so one at a time reaches every check); the names views commonly read
    without declaring them all at once; text path parameters."""
    api = db_api
    client = api.app.test_client()
    tried = 0
    for op in OPERATIONS:
        if op.form is not None:  # uploads: test_hostile_uploads below
            continue
        declared = list((op.query or {}).get("properties", {}))
        undeclared = [n for n in EXTRA_QUERY if n not in declared]
        body = {} if op.body is not None else None
        for n, identity in enumerate(identities(op.auth)):
            headers = who[identity]
            queries = [(name, f"{name}={value}") for name in declared for value in QUERY_VALUES]
            if n == 0:
                queries += [(undeclared[0], "&".join(f"{name}={value}" for name in undeclared))
                            for value in QUERY_VALUES[:6]]
            for name, query in queries:
                url = url_of(op.rule, who["cid"]) + "?" + query
                where = f"{op.method.upper()} {url[:120]} as {identity}"
                response = send(client, op.method.upper(), url, headers, json=body)
                assert_clean(response, where)
                if query.startswith(f"{name}=%00"):
                    assert response.status_code == 422, where
                    assert response.get_json()["error"]["field"] == name, where
                tried += 1
            if re.search(r"<(?!int:)", op.rule):
                for text in ("%00", "%ED%A0%80", "..%2F..%2Fetc%2Fpasswd", "x" * 5000):
                    url = url_of(op.rule, who["cid"], text)
                    assert_clean(send(client, op.method.upper(), url, headers), url[:80])
    assert tried > 1000


def test_the_calendar_ends_in_every_date_filter_are_422(db_api, who):
    """0001-01-01 and 9999-12-31 (with and without a time-zone shift) raised
    OverflowError in the history, export, ticket and dashboard filters."""
    api = db_api
    headers = who["admin"]
    client = api.app.test_client()
    ends = ["0001-01-01", "9999-12-31", "9999-12-31T23:59:59-12:00",
            "0001-01-01T00:00:00+14:00", "1899-12-31"]
    checks = [("GET", "/api/v1/history?ended_from={}", "ended_from"),
              ("GET", "/api/v1/history?ended_to={}", "ended_to"),
              ("GET", "/api/v1/tickets?since={}", "since"),
              ("GET", "/api/v1/tickets?until={}", "until"),
              ("GET", "/api/v1/dashboard?from={}", "from"),
              ("GET", "/api/v1/dashboard?to={}", "to")]
    for method, url, field in checks:
        for end in ends:
            full = url.format(end.replace("+", "%2B"))
            response = send(client, method, full, {**headers, "X-Meiqia-Lang": "zh-CN"})
            error = response.get_json()["error"]
            assert response.status_code == 422, (full, error)
            assert error["field"] == field, (full, error)
            if "between" in error.get("message_en", ""):
                assert "日期须在 1900-01-01 到 9998-12-31 之间" in error["message"], error
    exported = send(client, "POST", "/api/v1/history/exports", headers,
                    json={"format": "csv", "filters": {"ended_to": "9999-12-31"}})
    assert exported.status_code == 422, exported.get_json()
    # The last day inside the range still works.
    assert send(client, "GET", "/api/v1/history?ended_to=9998-12-31&ended_from=1900-01-01",
                headers).status_code == 200


def test_a_json_body_over_the_limit_is_413_before_it_is_read(db_api, who):
    api = db_api
    client = api.app.test_client()
    limit = api.app.config["MAX_JSON_BYTES"]
    big = json.dumps({"questions": ["退货"], "answer": "长" * (limit // 3 + 10)},
                     ensure_ascii=False)
    response = send(client, "POST", "/api/v1/knowledge", who["admin"], data=big,
                    content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == {
        "code": "too_large", "field": None,
        "message": f"the JSON body may be at most {limit} bytes"}
    # Chunked (no Content-Length): read only one byte past the limit, then refused.
    chunks = io.BytesIO(big.encode())
    response = client.post("/api/v1/knowledge", headers={**who["admin"],
                           "Transfer-Encoding": "chunked"}, input_stream=chunks,
                           content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413, response.get_data()[:200]
    assert chunks.tell() <= limit + 1 + 64 * 1024  # the stream was not read whole


def test_the_unauthenticated_widget_session_refuses_bad_text(api):
    client = api.app.test_client()
    for field in ("name", "landing_page", "referrer", "title"):
        raw = f'{{"team_id": {api.team["id"]}, {json.dumps(field)}: "\\ud800"}}'
        response = client.post("/api/v1/widget/session", data=raw,
                               content_type="application/json",
                               headers={"X-Meiqia-Lang": "zh-CN"})
        error = response.get_json()["error"]
        assert response.status_code == 422 and error["field"] == field, error
        assert "不是有效的文本" in error["message"]
    response = client.post("/api/v1/widget/session", data=DEEP, content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "too_deep"


# --- pages, forms and uploads ---------------------------------------------------------


def page_rules(app: Any) -> list[str]:
    return sorted(r.rule for r in app.url_map.iter_rules()
                  if "GET" in r.methods and not r.rule.startswith(("/api/", "/static", "/ws/"))
                  and "<" not in r.rule) + ["/tickets/1", "/lang/en"]


def test_pages_answer_hostile_query_strings_with_a_4xx_page_or_the_page(api):
    client = api.client  # logged in as the admin (cookie session)
    for rule in page_rules(api.app):
        for query in ("x=%00", "next=%ED%A0%80&from=0001-01-01&to=9999-12-31",
                      "ended_from=0001-01-01&ended_to=9999-12-31T23:59:59-12:00&page=1e400",
                      "q=%FF%FE&token=%ED%A0%80&lang=%00zh"):
            response = client.get(f"{rule}?{query}")
            response.close()
            assert response.status_code < 500, (rule, query, response.status_code)
            if "%00" in query:
                assert response.status_code == 422, (rule, query)
    zh = api.app.test_client().get("/login?x=%00", headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 422 and "包含 NUL 字符" in zh.get_data(as_text=True)


def test_login_and_register_forms_refuse_bad_text_with_a_4xx(app):
    from tests.helpers import ApiClient

    ApiClient.registered(app)
    form = app.test_client()
    form.get("/login")
    with form.session_transaction() as session:
        csrf = session["csrf"]
    for page in ("/login", "/register"):
        for email, password in (("admin%00@example.com", "x"), ("%ED%A0%80", "%ED%A0%80"),
                                ("%FF%FE%00", "pw"), ("admin@example.com", "a%00b"),
                                ("a" * 5000, "b" * 5000)):
            body = (f"email={email}&password={password}&name=%ED%A0%80&team_name=%00"
                    f"&csrf_token={csrf}").encode()
            response = form.post(page, data=body,
                                 content_type="application/x-www-form-urlencoded")
            response.close()
            assert 400 <= response.status_code < 500, (page, email, response.status_code)
    page = form.post("/login", data={"email": "admin@example.com", "password": ADMIN_PASSWORD,
                                     "csrf_token": csrf})
    assert page.status_code in {302, 303}  # the real one still signs in


def test_hostile_uploads(db_api, who):
    api = db_api
    client = api.app.test_client()
    cid = who["cid"]
    names = ["a\x00.png", "\udc80.txt".encode("utf-8", "surrogateescape").decode("latin-1"),
             "..%2F..%2Fx.txt", "长" * 300 + ".txt", "%00"]
    for url, headers in ((f"/api/v1/widget/conversations/{cid}/uploads", who["visitor"]),
                         (f"/api/v1/conversations/{cid}/uploads", who["admin"])):
        for kind in ("file", "%00", "%ED%A0%80", "image"):
            for name in names:
                response = client.post(f"{url}?kind={kind}", headers=headers,
                                       data={"file": (io.BytesIO(b"hello"), name)},
                                       content_type="multipart/form-data")
                response.close()
                assert_clean(response, f"{url} {kind} {name!r}")
        raw = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="\xed\xa0\x80'
               b'\x00.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n')
        response = client.post(f"{url}?kind=file", headers=headers, data=raw,
                               content_type="multipart/form-data; boundary=b")
        assert_clean(response, f"{url} raw name")
    assert api.post("/api/v1/auth/login", json={"email": "admin@example.com",
                                                "password": ADMIN_PASSWORD}).status_code == 200
