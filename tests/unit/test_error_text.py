"""Every error message the code raises has a zh-CN translation (web/error_text.py).

The messages are read from the source, not listed by hand: each
``raise SomeError("...")``/``f"..."`` of a ServiceError class, each
``channel.error(code, "...")`` of the sockets, the bot's QuestionError texts
and the knowledge-base file problems. An f-string becomes sample messages: a
number where the code puts a number, the real values where it puts one of a
few words ("an image", "the team"), and otherwise text full of regex and format
syntax, which must come through unchanged. A new English message without a
rule fails here, naming the file and line.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest

from meiqia.web import error_text
from meiqia.web.error_text import translate

ROOT = Path(__file__).resolve().parents[2] / "meiqia"
#: Where refusals are raised: the domain, the web layer (API, sockets, pages), the
#: webhook sink's settings check. Visitor-facing ones are all in here (widget
#: session, messages, uploads, tickets form, ratings, human/queue, tokens, frames).
SOURCES = sorted([*ROOT.glob("services/*.py"), *ROOT.glob("web/*.py"),
                  *ROOT.glob("channels/*.py"),
                  *ROOT.glob("web/api/*.py"), ROOT / "plugins" / "webhook_sink.py"])
ERRORS = {"ServiceError", "ValidationError", "Unauthorized", "Forbidden", "NotFound",
          "Conflict", "TooLarge", "TooDeep", "RateLimited",
          # a delivery's stored failure, shown to admins (read_stored)
          "SinkDisabled", "SinkFailed", "SinkRefused", "DeliveryError"}
#: Text a user could type (a name, a key, a file name): regex and format syntax and
#: CJK, no ": " or spaces (the code's field names and statuses have none either).
TEXT = "李客服{0}(.*)\\1$&%s"
#: Placeholders the code fills with one of a few fixed words (translated, so
#: not expected verbatim in the output).
WORDS: dict[str, list[str]] = {
    "what": ["an image", "a file"],
    "whose": ["the team", "you"],
    "who": [TEXT, "someone else"],
    "' or '.join(names)": ["string", "integer or null", "object or array or null"],
    "human_size(limit_for(kind))": ["5 MB", "50 MB", "1.5 MB", "512 KB", "100 bytes"],
    "allowed": ["none (closed is final)", "open, pending"],
    # services/validation.py: a schema's x-max-reason (knowledge.ANSWER's), or none
    "why_max": ["", " (the longest chat message)"],
}
#: Whole messages whose parts vary together.
SAMPLES: dict[str, list[str]] = {
    "{asked[0]}: leave a {' or an '.join(asked)} so we can reply": [
        "phone: leave a phone or an email so we can reply",
        "phone: leave a phone so we can reply",
        "email: leave a email so we can reply",
    ],
}
#: Messages that wrap another error's text, which is sampled on its own below
#: (the bot's QuestionError, a knowledge-base file's problems).
WRAPPERS = {"question: {exc}", "file: {exc}"}
#: Placeholders holding numbers.
NUMERIC = re.compile(r"(?i)max|min|limit|total|load|low|high|count|size|days|rows|frame|"
                     r"INT_|\bn\b|line|more|seen\[")
TRANSLATED = {w for words in WORDS.values() for w in words if w != TEXT}


def _templates(path: Path) -> list[tuple[int, ast.expr]]:
    """(line, message expression) of every refusal raised in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in ERRORS:
            found.append((node.lineno, node.args[0]))
        elif name == "error" and isinstance(func, ast.Attribute) and len(node.args) >= 2:
            found.append((node.lineno, node.args[1]))
    return found


def _literals(expr: ast.expr) -> list[ast.expr]:
    """The string literals a message expression may be (both sides of an ``if``)."""
    if isinstance(expr, ast.IfExp):
        return _literals(expr.body) + _literals(expr.orelse)
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr]
    if isinstance(expr, ast.JoinedStr):
        return [expr]
    return []  # exc.message, str(exc): someone else's message, passed on


def _source(expr: ast.expr) -> str:
    if isinstance(expr, ast.Constant):
        return expr.value
    return "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
                   for v in expr.values)  # type: ignore[attr-defined]


def _samples(expr: ast.expr) -> list[tuple[str, list[str]]]:
    """(message, parts that must appear in the translation unchanged)."""
    if isinstance(expr, ast.Constant):
        return [(expr.value, [])]
    source = _source(expr)
    if source in WRAPPERS:
        return []
    if source in SAMPLES:
        return [(m, []) for m in SAMPLES[source]]
    choices: list[list[tuple[str, bool]]] = []
    number = 20000
    for value in expr.values:  # type: ignore[attr-defined]
        if isinstance(value, ast.Constant):
            choices.append([(value.value, False)])
            continue
        text = ast.unparse(value.value)
        spec = ast.unparse(value.format_spec)[2:-1] if value.format_spec else ""
        if text in WORDS:
            options = WORDS[text]
        elif spec or NUMERIC.search(text):
            number += 1
            options = [format(number, spec or "d")]
        else:
            options = [TEXT]
        if value.conversion == ord("r"):
            options = [repr(o) for o in options]
        choices.append([(o, True) for o in options])
    out = []
    for combo in itertools.product(*choices):
        message = "".join(part for part, _ in combo)
        kept = [part for part, filled in combo if filled and part not in TRANSLATED]
        out.append((message, kept))
    return out


def _question_errors() -> list[str]:
    """The bot's refusals of a question, as ``POST /bot/ask`` says them."""
    tree = ast.parse((ROOT / "bot" / "normalize.py").read_text(encoding="utf-8"))
    return [f"question: {node.args[0].value}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "QuestionError"
            and isinstance(node.args[0], ast.Constant)]


def _kb_problems() -> list[ast.expr]:
    """Each problem ``bot.kbfile`` reports about a file: the message of every
    ``(line, message)`` pair it builds."""
    tree = ast.parse((ROOT / "bot" / "kbfile.py").read_text(encoding="utf-8"))
    return [node.elts[1] for node in ast.walk(tree)
            if isinstance(node, ast.Tuple) and len(node.elts) == 2
            and not (isinstance(node.elts[0], ast.Constant)
                     and isinstance(node.elts[0].value, str))  # ("utf-8-sig", "gb18030")
            and _literals(node.elts[1])]


def _cases() -> list[tuple[str, str, list[str]]]:
    cases = []
    for path in SOURCES:
        for line, expr in _templates(path):
            for literal in _literals(expr):
                for message, kept in _samples(literal):
                    cases.append((f"{path.relative_to(ROOT)}:{line}", message, kept))
    cases += [("bot/normalize.py", message, []) for message in _question_errors()]
    for expr in _kb_problems():
        for problem, kept in _samples(expr):
            # As POST /knowledge/import says them: the file, then the problems.
            cases.append(("bot/kbfile.py", f"file: tmpq1w2e3.csv: line 7: {problem}",
                          ["tmpq1w2e3.csv", *kept]))
            cases.append(("bot/kbfile.py", f"file: tmpq1w2e3.csv: {problem}; … and 3 more",
                          ["tmpq1w2e3.csv", *kept]))
    return cases


CASES = _cases()
CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH = re.compile(r"\b[A-Za-z]{2,} [a-z]{2,} [a-z]{2,}\b")


def test_the_scan_finds_the_messages():
    distinct = {message for _, message, _ in CASES}
    assert len(distinct) > 200, len(distinct)
    # A few by heart, so a broken scan cannot pass with other messages.
    for message in ("file: an image may be at most 5 MB", "the conversation has ended: start "
                    "a new one", "no such conversation", "invalid visitor token",
                    "李客服{0}(.*)\\1$&%s is at the limit (20001/20002)"):
        assert message in distinct


@pytest.mark.parametrize(("where", "message", "kept"), CASES,
                         ids=[f"{w}:{m[:40]}" for w, m, _ in CASES])
def test_every_message_has_a_zh_cn_translation(where: str, message: str, kept: list[str]):
    zh = translate(message, "zh-CN")
    assert zh != message, f"{where}: no zh-CN rule for {message!r} (add one to web/error_text.py)"
    assert CJK.search(zh), f"{where}: {message!r} -> {zh!r}"
    rest = zh
    for part in kept:
        assert part in zh, f"{where}: {part!r} of {message!r} lost in {zh!r}"
        rest = rest.replace(part, "")
    # No English sentence left over (a wrapped part no rule knew): three words in a row.
    left = ENGLISH.search(rest)
    assert left is None, f"{where}: {message!r} -> {zh!r} keeps {left.group(0)!r}"
    assert translate(message, "en") == message


def test_examples_read_as_intended():
    assert translate("body: at most 5000 characters", "zh-CN") == "内容：最多 5000 个字符"
    assert translate("李客服 is at the limit (3/3)", "zh-CN") == "李客服 的接待量已达上限（3/3）"
    assert translate("email: must not be empty", "zh-CN") == "邮箱：不能为空"
    assert translate("password: at least 8 characters", "zh-CN") == "密码：至少 8 个字符"
    assert translate("questions[2]: must not be empty", "zh-CN") == "问题（第 3 项）：不能为空"
    assert translate("page: expected integer or null", "zh-CN") == "页码：应为整数或空值"
    assert translate("file: a file may be at most 512 bytes", "zh-CN") == "文件：文件最大 512 字节"
    assert translate("25,001 conversations match: an export holds at most 20,000; narrow the "
                     "time range", "zh-CN") == \
        "符合条件的对话有 25,001 个，一次最多导出 20,000 个：请缩小时间范围"
    assert translate("file: tmpa.yaml: line 3: id 退货: no answer; line 9: the id is empty",
                     "zh-CN") == "文件：tmpa.yaml：第 3 行：id 退货：没有答案；第 9 行：id 为空"
    # A masked secret with a new server (services/validation.merge_secrets): both named.
    assert translate("config.imap_password: config.imap_host changed: enter the secret again "
                     "(a saved secret is only sent to the server it was saved for)",
                     "zh-CN") == \
        "IMAP 密码：IMAP 服务器已更改，请重新输入（已保存的密钥只发往保存时的服务器）"
    # Not raised but built (web/unavailable.py's 503) and werkzeug's own.
    assert translate("the database is busy or unreachable; try again in a moment", "zh-CN") \
        == "数据库繁忙或无法连接：请稍后再试"
    assert translate("the job queue (Redis) is busy or unreachable; try again in a moment",
                     "zh-CN") == "任务队列（Redis）繁忙或无法连接：请稍后再试"
    assert translate("The method is not allowed for the requested URL.", "zh-CN") == \
        "这个地址不支持这种请求方法。"


def test_a_plugins_keys_stay_as_they_were():
    """docs/plugins.md "Names in every failure": a zh-CN admin reads the keys of a
    plugin's answer as they were; a panel's ``url`` read 网址 when the URL check's words
    translated its problem, and ``url`` when the plugins' own rule did."""
    assert translate("returned an unusable result: 2 of 3 panels dropped: panel 2: url: "
                     "must start with http:// or https://; panel 3: url: missing", "zh-CN") == \
        "返回的结果无法使用：3 个面板中有 2 个被丢弃：第 2 个面板：url：必须以 http:// 或 " \
        "https:// 开头；第 3 个面板：url：缺少"
    assert translate("returned an unusable result: link 1: href: has no host name",
                     "zh-CN") == "返回的结果无法使用：第 1 个链接：href：缺少主机名"
    # The API's own messages keep their labels.
    assert translate("url: must start with http:// or https://", "zh-CN") == \
        "网址：必须以 http:// 或 https:// 开头"


def test_unknown_messages_stay_english():
    for message in ("something new went wrong", "invalid literal for int() with base 10: 'x'",
                    "body: a brand new rule 5000", ""):
        assert translate(message, "zh-CN") == message
    # A KB problem no rule knows stays English beside the ones translated.
    assert translate("file: a.csv: line 2: the id is empty; quantum flux",
                     "zh-CN") == "文件：a.csv：第 2 行：id 为空; quantum flux"
    assert translate("file: a.csv: line 5: quantum flux", "zh-CN") == \
        "文件：a.csv：第 5 行：quantum flux"


def test_localise_keeps_code_and_field_and_the_english_original():
    error = {"code": "invalid", "message": "body: must not be empty", "field": "body"}
    assert error_text.localise(error, "zh-CN") == {
        "code": "invalid", "message": "内容：不能为空", "field": "body",
        "message_en": "body: must not be empty"}
    assert error_text.localise(error, "en") is error
    unknown = {**error, "message": "something new"}
    assert error_text.localise(unknown, "zh-CN") is unknown


def test_every_field_of_the_api_schemas_has_a_label():
    """A schema message names a field; each one an API body or query can have
    reads in Chinese too (its path, or the beginning of it, is in ``FIELD_LABELS``)."""
    import importlib

    from meiqia.web import api

    for area in api.areas():
        importlib.import_module(f"meiqia.web.api.{area}")
    paths: set[str] = set()

    def walk(schema: dict | None, prefix: str = "") -> None:
        schema = schema or {}
        for name, sub in schema.get("properties", {}).items():
            paths.add(prefix + name)
            walk(sub, f"{prefix}{name}.")
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], prefix)

    for operation in api.OPERATIONS:
        walk(operation.body)
        walk(operation.query)
    # Each path whole: a nested field's label is its own, not "设置中的 working_hours".
    unlabelled = sorted(p for p in paths
                        if p not in error_text.FIELD_LABELS and p not in NO_LABEL)
    assert not unlabelled, f"add zh-CN labels to error_text.FIELD_LABELS: {unlabelled}"


#: Shown as they are: ids and cursors a program sends, not fields a person fills in.
NO_LABEL = {"client_msg_id", "up_to", "after"}


def test_a_name_is_labelled_by_what_the_request_is_about():
    """hteam: an empty group name said "姓名：不能为空" (a person's name). A group's,
    a token's, a sink's name is 名称; an agent's, a visitor's, a ticket contact's,
    the registering admin's is 姓名; the team's is 团队名称. The subject is the
    request's path (``subject_of``), the same for every rule that names a field."""
    empty = "name: must not be empty"
    assert error_text.subject_of("/api/v1/groups/3") == "groups"
    assert error_text.subject_of("/register") == "register"
    for subject in ("groups", "tokens", "ticket-sinks", "iframe-plugins", None):
        assert translate(empty, "zh-CN", subject) == "名称：不能为空", subject
    for subject in ("agents", "visitors", "tickets", "widget", "auth", "register"):
        assert translate(empty, "zh-CN", subject) == "姓名：不能为空", subject
    assert translate(empty, "zh-CN", "team") == "团队名称：不能为空"
    assert translate("name: at most 80 characters", "zh-CN", "agents") == "姓名：最多 80 个字符"
    error = {"code": "invalid", "message": empty, "field": "name"}
    assert error_text.localise(error, "zh-CN", "groups")["message"] == "名称：不能为空"


def test_field_paths_read_as_words_and_the_field_stays_the_path():
    """hteam: "设置.working_hours.days[0]：不能大于 7", "标签[1]：…", "设置.timezone：未知字段"
    showed machine paths. A list's item is counted from 1, a nested field has its
    own label, a key the client made up reads as the field it is in."""
    assert translate("settings.working_hours.days[0]: must be at most 7", "zh-CN") == \
        "工作时间·星期（第 1 项）：不能大于 7"
    assert translate("tags[1]: at most 40 characters", "zh-CN") == "标签（第 2 项）：最多 40 个字符"
    assert translate("settings.timezone: unknown field", "zh-CN") == "设置中的 timezone：未知字段"
    assert translate("settings.widget.color: has the wrong format", "zh-CN") == \
        "网页插件颜色：格式不正确"
    assert translate("custom.vip: expected string", "zh-CN") == "自定义信息中的 vip：应为文本"
    assert translate("frobnicate: unknown field", "zh-CN") == "frobnicate：未知字段"
    error = {"code": "invalid", "message": "tags[1]: at most 40 characters", "field": "tags[1]"}
    assert error_text.localise(error, "zh-CN")["field"] == "tags[1]"
