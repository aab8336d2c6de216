"""Each route's path parameter has its own label in zh-CN errors (outside check hapi,
defect 6): ``/attachments/%00`` said "问答 ID" (the knowledge base's ``key``), as one
label per field name served every route. Every text path parameter of every route
is sent a NUL here and must be named by its route's label."""

from __future__ import annotations

import re

from meiqia.web import error_text

ZH = {"X-Meiqia-Lang": "zh-CN"}
NUL_ZH = "：包含 NUL 字符或不成对的代理字符，不是有效的文本"


def text_params(app) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/static/"):
            continue
        for converter, name in re.findall(r"<(?:(\w+):)?(\w+)>", rule.rule):
            if converter in (None, "", "string", "path"):
                found.append((rule.rule, name, sorted(rule.methods - {"HEAD", "OPTIONS"})[0]))
    return found


def test_every_text_path_parameter_has_its_routes_label(api):
    params = text_params(api.app)
    assert ("/api/v1/attachments/<key>", "key", "GET") in params
    for rule, name, method in params:
        label = error_text.PATH_LABELS.get(rule, {}).get(name)
        assert label, f"{rule}: no zh-CN label for its path parameter {name}"
        assert re.search(r"[\u4e00-\u9fff]", label), (rule, name, label)
        url = re.sub(rf"<(?:\w+:)?{name}>", "%00", rule)
        url = re.sub(r"<int:\w+>", "1", url)
        url = re.sub(r"<(?:\w+:)?\w+>", "x", url)
        response = api.client.open(url, method=method, headers={**ZH, "X-CSRF-Token": api.csrf})
        assert response.status_code == 422, (url, response.status_code)
        body = (response.get_json()["error"]["message"] if response.is_json
                else response.get_data(as_text=True))
        assert f"{label}{NUL_ZH}" in body, (url, body[:300])
    attachment = api.get("/api/v1/attachments/%00", headers=ZH).get_json()["error"]
    assert attachment["message"] == f"附件标识{NUL_ZH}", attachment
    assert attachment["field"] == "key" and "问答" not in attachment["message"]
    # the knowledge base's own ``key`` keeps its label
    assert error_text.translate("key: an entry with this id exists", "zh-CN",
                                "knowledge") == "问答 ID：已有这个 ID 的问答"
    assert error_text.translate("key: at most 64 characters", "zh-CN",
                                "knowledge") == "问答 ID：最多 64 个字符"
