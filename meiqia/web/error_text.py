"""Error messages in the reader's language: English → zh-CN by template.

Services raise English messages (``services.errors``) with the facts in them:
numbers, names, what the visitor typed. Translating where they are raised would
put the language of the request into every service; translating here, where an
error becomes JSON (``web.api.error_response``) or a socket frame
(``web.ws.Channel.error``), keeps the services language-free and the successful
path untouched: only an error pays for one scan of the rules below.

Each rule is an anchored regular expression over the whole English message and
a zh-CN template naming its groups. A group is copied verbatim (``{n}``), so
numbers, agents' names and user text come through exactly as they were; the
template is ours, and values are put in by a function, never by ``str.format``
or ``re`` replacement syntax, so a ``{`` or ``\\1`` in user text stays text. A
placeholder may name a converter: ``{x:field}`` translates a field path
("body" → "内容"), ``{x:types}`` a schema type list, ``{x:size}`` a size like
"512 bytes", ``{x:kb}`` the problems of a knowledge-base file (each translated
by ``KB_RULES``, or by the rules of the API when it is the API's own message),
``{x:api}`` another message of ours (by these rules), ``{x:list}`` a list
("a, b" → "a、b"); a path parameter is labelled by its route (``PATH_LABELS``).
The first rule that
matches wins, so specific rules come before general ones. A message no rule matches stays English: the detail is
never lost, only untranslated.

To add a message: raise it in English as usual, then add a rule in the area's
block below (a test builds samples from every ``raise ...Error(f"...")`` of the
services and the web layer and fails on one no rule changes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["FIELD_LABELS", "KB_RULES", "RULES", "SUBJECT_LABELS", "field_label", "localise",
           "subject_of", "translate"]

#: Field paths (and the first part of longer ones) as zh-CN readers know them.
FIELD_LABELS: dict[str, str] = {
    "channel": "渠道",
    "external_message_id": "外部消息 ID",
    "external_user_id": "外部用户 ID",
    "metadata": "元数据",
    "event": "事件",
    "accept_over_limit": "超出上限接入",
    "after_seq": "续传位置",
    "active": "启用",
    "address": "地址",
    "agent_id": "客服",
    "agent_name": "客服姓名",
    "answer": "答案",
    "assignee_id": "处理人",
    "attachment": "附件",
    "attachments": "附件",
    "attributes": "其他信息",
    "body": "内容",
    "category": "分类",
    "columns": "列",
    "comment": "评价留言",
    "company": "公司",
    "config": "配置",
    "config.allow_private_addresses": "允许内网地址",
    "config.api_base_url": "接口地址",
    "config.outbound_url": "回复网址",
    "config.from": "发件人",
    "config.host": "SMTP 服务器",
    "config.password": "密码",
    "config.port": "端口",
    "config.secret": "签名密钥",
    "config.to": "收件人",
    "config.url": "网址",
    "config.user": "用户名",
    # the e-mail channel's settings (meiqia/channels/email/)
    "config.from_address": "发件地址",
    "config.from_name": "发件人名称",
    "config.imap_folder": "收件文件夹",
    "config.imap_host": "IMAP 服务器",
    "config.imap_idle": "IMAP IDLE",
    "config.imap_password": "IMAP 密码",
    "config.imap_port": "IMAP 端口",
    "config.imap_security": "IMAP 加密方式",
    "config.imap_user": "IMAP 用户名",
    "config.poll_interval": "检查新邮件间隔",
    "config.smtp_host": "SMTP 服务器",
    "config.smtp_password": "SMTP 密码",
    "config.smtp_port": "SMTP 端口",
    "config.smtp_security": "SMTP 加密方式",
    "config.smtp_user": "SMTP 用户名",
    "content": "内容",
    "conversation_id": "对话",
    "current_password": "当前密码",
    "custom": "自定义信息",
    "customer_name": "客户名称",
    "customer_tags": "客户标签",
    "days": "天数",
    "duration_max": "最长持续时长",
    "duration_min": "最短持续时长",
    "email": "邮箱",
    "enabled": "启用",
    "ended_from": "结束时间从",
    "ended_to": "结束时间至",
    "expires_in_days": "有效天数",
    "file": "文件",
    "filters": "筛选条件",
    "first_response_max": "最长首次响应",
    "first_response_min": "最短首次响应",
    "format": "格式",
    "from": "开始日期",
    "grade": "对话分级",
    "grades": "对话分级",
    "grades.grade": "对话分级·级别",
    "grades.min_messages": "对话分级·最少消息数",
    "group_id": "分组",
    "groups": "分组",
    "height": "高度",
    "inactivity_minutes": "无响应结束（分钟）",
    "bot_inactivity_minutes": "机器人对话无响应结束（分钟）",
    "invalid": "无效对话",
    "ip": "IP",
    "key": "问答 ID",
    "keyword": "关键词",
    "kind": "类型",
    "landing_page": "着陆页",
    "language": "语言",
    "lead": "线索",
    "max_concurrent": "最大接待量",
    "mine": "我的",
    "missed": "遗漏对话",
    "mode": "发送方式",
    # a thing's name (group, token, sink, sidebar plugin); a person's: SUBJECT_LABELS
    "name": "名称",
    "nickname": "昵称",
    "note": "备注",
    "page": "页码",
    "password": "密码",
    "password2": "再次输入",
    "per_page": "每页条数",
    "phone": "电话",
    "platform": "访问平台",
    "position": "位置",
    "priority": "优先级",
    "q": "搜索词",
    "question": "问题",
    "question_ids": "问题",
    "questions": "问题",
    "rating": "评价",
    "rating_comment": "评价内容",
    "referrer": "来源页",
    "region": "地区",
    "renew_key": "续期密钥",
    "revoke_tokens": "同时吊销 API 令牌",
    "role": "角色",
    "scope": "数据权限",
    "scope_agents": "可查看的客服",
    "scope_groups": "可查看的分组",
    "settings": "设置",
    "settings.answer_threshold": "直接回答阈值",
    "settings.bot_enabled": "机器人",
    "settings.bot_failures_before_human": "转人工前机器人未答次数",
    "settings.bot_synonyms": "同义词",
    "settings.bot_target_precision": "直接回答的目标准确率",
    "settings.bot_user_words": "自定义词典",
    "settings.offline_message": "无人在线时的提示",
    "settings.queue_enabled": "排队",
    "settings.suggest_threshold": "“您是不是想问”阈值",
    "settings.ticket_form": "留言表单",
    "settings.welcome_message": "欢迎语",
    "settings.ticket_form.allow_attachments": "留言表单·允许附件",
    "settings.ticket_form.ask_email": "留言表单·询问邮箱",
    "settings.ticket_form.ask_name": "留言表单·询问姓名",
    "settings.ticket_form.ask_phone": "留言表单·询问电话",
    "settings.ticket_form.require_contact": "留言表单·必须留联系方式",
    "settings.working_hours": "工作时间",
    "settings.working_hours.days": "工作时间·星期",
    "settings.working_hours.end": "工作时间·结束时刻",
    "settings.working_hours.mode": "工作时间·模式",
    "settings.working_hours.start": "工作时间·开始时刻",
    "settings.widget": "网页插件",
    "settings.widget.allowed_origins": "允许嵌入网页插件的网站",
    "settings.widget.color": "网页插件颜色",
    "settings.widget.position": "网页插件位置",
    "since": "开始时间",
    "source": "访问来源",
    "status": "状态",
    "subject": "标题",
    "suggestion": "建议回复",
    "suggestion.edited": "建议回复·是否修改",
    "suggestion.entry_id": "建议回复·问答",
    "suggestion.message_id": "建议回复·消息",
    "summary": "对话小结",
    "tags": "标签",
    "team": "团队",
    "team_id": "团队",
    "team_name": "团队名称",
    "timezone": "时区",
    "title": "页面标题",
    "to": "结束日期",
    "token": "令牌",
    "type": "类型",
    "until": "截止时间",
    "url": "网址",
    "visibility": "可见范围",
    "with_content": "包含聊天内容",
}
#: The filters of an export's body (``filters.rating``), as the history filters they are.
_HISTORY_FILTERS = ("customer_name", "ended_from", "ended_to", "agent_id", "agent_name",
                    "customer_tags", "region", "phone", "content", "note", "tags", "summary",
                    "rating_comment", "source", "platform", "rating", "grade", "lead",
                    "invalid", "missed", "duration_min", "duration_max", "first_response_min",
                    "first_response_max", "landing_page", "keyword", "ip", "channel")
FIELD_LABELS.update({f"filters.{name}": f"筛选条件·{FIELD_LABELS[name]}"
                     for name in _HISTORY_FILTERS})

#: What a field is depends on what the request is about: ``name`` is a group's,
#: a token's, a sink's name (名称) by default, a person's (姓名) on an agent, a
#: visitor, a ticket's contact, the registering admin, the team's own (团队名称) on
#: the team. Keyed by the request's subject (``subject_of``: the first segment of
#: its path after ``/api/v1/``, or of a page's); a label here replaces the one of
#: ``FIELD_LABELS`` for the same path (and the same beginning of a longer one).
SUBJECT_LABELS: dict[str, dict[str, str]] = {
    "agents": {"name": "姓名"},
    "auth": {"name": "姓名"},  # POST /auth/register: the admin's own name
    "register": {"name": "姓名"},  # the register page
    "visitors": {"name": "姓名"},
    "tickets": {"name": "姓名"},  # the contact of a ticket
    "widget": {"name": "姓名"},  # the visitor, from the widget (session, ticket form)
    "team": {"name": "团队名称"},
    # socket frames (web/ws.py, subject of /ws/…): a bad key of the envelope is the
    # frame's; ``data`` and the frame's fields keep the names the protocol gives them
    "ws": {"frame": "帧"},
}


def subject_of(path: str) -> str | None:
    """The subject of a request for ``SUBJECT_LABELS``: ``/api/v1/groups/3`` →
    ``groups``, ``/register`` → ``register``; None for ``/``."""
    rest = path[len("/api/v1/"):] if path.startswith("/api/v1/") else path.lstrip("/")
    return rest.split("/", 1)[0] or None


#: The text path parameters of each route (its rule, as Flask writes it), as zh-CN
#: readers know them: a path parameter is named by its own route, never by a body
#: field of the same name elsewhere (``/attachments/<key>``'s key is an attachment's,
#: not the knowledge base's 问答 ID). A test sends every route's parameters a NUL
#: and fails on one missing here (tests/api/test_path_labels.py). Ids (``<int:…>``)
#: are digits only: a bad one is a 404, not a message naming it.
PATH_LABELS: dict[str, dict[str, str]] = {
    "/api/v1/attachments/<key>": {"key": "附件标识"},
    "/api/v1/channels/<slug>": {"slug": "渠道类型"},
    "/api/v1/channels/<slug>/test": {"slug": "渠道类型"},
    "/api/v1/jobs/<job_id>": {"job_id": "任务 ID"},
    "/api/v1/plugins/<name>": {"name": "插件名称"},
    "/api/v1/plugins/<name>/reset": {"name": "插件名称"},
    "/channels/wechat/<team_key>/": {"team_key": "回调地址中的团队标识"},
    "/lang/<code>": {"code": "语言"},
    "/reset-password/<token>": {"token": "重置密码链接"},
}


def path_labels(rule: str | None) -> dict[str, str]:
    """The labels of ``rule``'s path parameters (``PATH_LABELS``); none for no rule."""
    return PATH_LABELS.get(rule or "", {})


_TYPE_NAMES = {"object": "对象", "string": "文本", "integer": "整数", "number": "数字",
               "boolean": "布尔值", "array": "列表", "null": "空值"}
_TYPE = "(?:object|string|integer|number|boolean|array|null)"
#: A number as the services write it: 5000, -2147483648, 0.5, 20,000.
NUM = r"-?\d[\d,]*(?:\.\d+)?"
#: A field path before ": " (the shortest one that lets the rest match; a path has
#: no ": ", so a message that wraps others, "file: a.csv: line 2: …", is no field's).
FIELD = r"(?P<f>(?:(?!: ).)+?)"


#: An item of a list in a field path: ``tags[1]``.
_INDEX = re.compile(r"\[(\d+)\]")


def field_label(path: str, subject: str | None = None,
                params: dict[str, str] | None = None) -> str:
    """A field path as a reader knows it, never the machine path (the error's
    ``field`` keeps that): ``body`` → ``内容``; ``settings.widget.color`` → its
    label (a nested field's label names its parents: ``工作时间·星期``). A list's
    item says which, counted from 1: ``tags[1]`` → ``标签（第 2 项）``,
    ``settings.working_hours.days[0]`` → ``工作时间·星期（第 1 项）``. A path not
    known as a whole (a key the client made up) reads as the field it is in:
    ``settings.timezone`` → ``设置中的 timezone``. Unknown entirely: as is.
    ``subject`` (``subject_of``) picks the label of what the request is about:
    ``name`` on ``agents`` is 姓名, on ``groups`` 名称. ``params``: the labels of the
    route's path parameters (``path_labels``), which name them first."""
    labels = {**FIELD_LABELS, **SUBJECT_LABELS.get(subject or "", {}), **(params or {})}
    key = _INDEX.sub("", path)
    if key in labels:
        label = labels[key]
    else:
        cuts = [cut for cut in range(len(key) - 1, 0, -1)
                if key[cut] == "." and key[:cut] in labels]
        if not cuts:
            return path
        label = f"{labels[key[:cuts[0]]]}中的 {key[cuts[0] + 1:]}"
    items = [f"第 {int(n) + 1} 项" for n in _INDEX.findall(path)]
    return f"{label}（{'的'.join(items)}）" if items else label


def _types(text: str) -> str:
    return "或".join(_TYPE_NAMES.get(name, name) for name in text.split(" or "))


def _size(text: str) -> str:
    return text[:-len(" bytes")] + " 字节" if text.endswith(" bytes") else text


#: What the plugin runtime says of a call that gave no usable answer, inside its
#: ``Failure.describe`` (``returned an unusable result: …``, a busy pool) and a
#: privacy refusal (``plugin_runtime.privacy.REFUSAL_WORDS``); keys, types and
#: numbers stay as they are (the technical detail), the words around them are read.
_HOOK_PAIRS: list[tuple[str, str]] = [
    # a busy pool (runtime.PluginRuntime._full)
    (rf"all (?P<n>{NUM}) busy for (?P<s>[\d.]+)s", "{n} 个线程都已忙了 {s} 秒"),
    (rf"(?P<n>{NUM}) threads and (?P<b>{NUM}) waiting calls",
     "{n} 个线程和 {b} 个等待中的调用都已占满"),
    # a privacy refusal's kind of failure
    (r"raised an error", "出错"),
    (r"timed out", "超时"),
    (r"timed out: all its threads are busy", "超时：它的线程都在忙"),
    (r"is suspended", "已被熔断器暂停"),
    (r"returned an unusable result", "返回的结果无法使用"),
    # lists whose items are checked (answer, sidebar_panels, menu_links)
    (rf"(?P<n>{NUM}) of (?P<m>{NUM}) (?P<w:noun>candidate|panel|link)s dropped: "
     r"(?P<p:dropped>.+)", "{m} 个{w:noun}中有 {n} 个被丢弃：{p:dropped}"),
    (r"expected a list of (?P<w:noun>candidate|panel|link)s, got (?P<t:type>\w+)",
     "应为{w:noun}的列表，收到的是 {t:type}"),
    (rf"(?P<w:noun>candidate|panel|link) (?P<i>{NUM}): (?P<q:hook>.+)",
     "第 {i} 个{w:noun}：{q:hook}"),
    (rf"\(and (?P<n>{NUM}) more\)", "（另有 {n} 个）"),
    # before_message_saved (plugin_runtime.privacy.malformed)
    (r"expected a dict or None, got (?P<t:type>\w+)", "应为字典或 None，收到的是 {t:type}"),
    (r"unknown key (?P<k>.+); a change may hold body and payload",
     "未知的键 {k}；修改只能包含 body 和 payload"),
    (r"(?P<k>\w+): may not be changed \(only body and payload may\)",
     "{k}：不能修改（只能修改 body 和 payload）"),
    # assign_agent (services.routing.not_a_candidate)
    (r"expected one of the candidates, got (?P<t:type>\w+)", "应为候选客服之一，收到的是 {t:type}"),
    (r"the agent returned is not one of the candidates \(offline, full or elsewhere\)",
     "返回的客服不是候选客服之一（离线、已满或不在此处）"),
    # actor_from_request (web.security.not_an_actor)
    (r"expected an agent \(meiqia\.models\.Agent\) or None, got (?P<t:type>\w+)",
     "应为客服（meiqia.models.Agent）或 None，收到的是 {t:type}"),
    (r"the agent returned is deactivated", "返回的客服已停用"),
    (r"token_scope: expected read, conversations or admin",
     "token_scope：应为 read、conversations 或 admin"),
    # menu_links (web.plugin_ui.link_problem)
    (r"href: not an http\(s\) URL or a path of this site", "href：不是 http(s) 网址，也不是本站的路径"),
    # an item's or a key's problem (bot.answers.problem_of, the panels' and links')
    (r"expected a dict, got (?P<t:type>\w+)", "应为字典，收到的是 {t:type}"),
    (r"(?P<k>\w+): expected text, got (?P<t:type>\w+)", "{k}：应为文本，收到的是 {t:type}"),
    (r"(?P<k>\w+): expected a dict, got (?P<t:type>\w+)", "{k}：应为字典，收到的是 {t:type}"),
    (r"(?P<k>\w+): expected a number, got (?P<t:type>\w+)", "{k}：应为数字，收到的是 {t:type}"),
    (r"(?P<k>\w+): not a finite number", "{k}：不是有限的数字"),
    (r"(?P<k>\w+): missing", "{k}：缺少"),
    (r"(?P<k>\w+): blank", "{k}：为空"),
]

#: Problems of a knowledge-base file (``bot.kbfile.KBFileError``), one at a time.
_KB_PAIRS: list[tuple[str, str]] = [
    (rf"line (?P<n>{NUM}): (?P<m:kbitem>.+)", "第 {n} 行：{m:kbitem}"),
    (rf"… and (?P<n>{NUM}) more", "……另有 {n} 处问题"),
    (r"the file is empty", "文件是空的"),
    (r"the sheet is empty", "工作表是空的"),
    (r"not a readable XLSX file \(save it again from Excel or WPS as \.xlsx\)",
     "不是可读取的 XLSX 文件（请用 Excel 或 WPS 重新另存为 .xlsx）"),
    (r"not valid YAML: check the indentation, quotes and colons",
     "不是有效的 YAML：请检查缩进、引号和冒号"),
    (r"not valid YAML: a tag \(!!…\) that is not plain text, numbers or lists",
     "不是有效的 YAML：含有不是普通文本、数字或列表的标签（!!…）"),
    (r"expected a list of entries", "应为问答的列表"),
    (r"an entry must be a mapping with id, questions, answer",
     "每条问答须包含 id、questions、answer"),
    (r"the id is empty", "id 为空"),
    (rf"id (?P<k>.+) repeats the entry of line (?P<n>{NUM})", "id {k} 与第 {n} 行的问答重复"),
    (r"id (?P<k>.+): no questions", "id {k}：没有问题"),
    (r"id (?P<k>.+): no answer on any of its rows", "id {k}：所有行都没有答案"),
    (r"id (?P<k>.+): no answer", "id {k}：没有答案"),
    (r"id (?P<k>.+): the question is empty", "id {k}：问题为空"),
    (rf"id (?P<k>.+): a different answer than on line (?P<n>{NUM})",
     "id {k}：答案与第 {n} 行不同"),
    (r"missing column (?P<c>.+) \(the header needs id,question,answer\)",
     "缺少列 {c}（表头需要 id,question,answer）"),
    (r"cannot read the text encoding: save the file as UTF-8 \(or GBK\)",
     "无法识别文本编码：请将文件另存为 UTF-8（或 GBK）"),
    (r"unknown format: use \.yaml, \.csv or \.xlsx", "未知格式：请使用 .yaml、.csv 或 .xlsx"),
    (r"no entries in the file", "文件中没有问答"),
    (r"invalid file", "文件无效"),
    # an entry the API's checks refuse (services.knowledge.check_entry): its id, then
    # the API's own message; a bad id alone is the API's message on its own
    (r"id (?P<k>[^\s:]+): (?P<e:api>.+)", "id {k}：{e:api}"),
]

#: Every message, area by area; the first match wins.
_PAIRS: list[tuple[str, str]] = [
    # --- schema checks (services/validation.py), their specific cousins first ----
    (r"body: expected text", "内容：应为文本"),
    (r"keyword: must not be empty \(a # alone is no keyword\)", "关键词：不能为空（只有 # 不算关键词）"),
    (rf"{FIELD}: expected (?P<t:types>{_TYPE}(?: or {_TYPE})*)", "{f:field}：应为{t:types}"),
    (rf"{FIELD}: must be one of (?P<c>.*)", "{f:field}：必须是以下之一：{c}"),
    (rf"{FIELD}: must not be empty", "{f:field}：不能为空"),
    (rf"{FIELD}: at least (?P<n>{NUM}) characters", "{f:field}：至少 {n} 个字符"),
    (rf"{FIELD}: at most (?P<n>{NUM}) characters", "{f:field}：最多 {n} 个字符"),
    (rf"{FIELD}: at most (?P<n>{NUM}) characters \(the longest chat message\)",
     "{f:field}：最多 {n} 个字符（一条聊天消息的上限）"),
    (rf"{FIELD}: has the wrong format", "{f:field}：格式不正确"),
    (rf"{FIELD}: is not a valid email address", "{f:field}：不是有效的邮箱地址"),
    (rf"{FIELD}: must be between (?P<a>{NUM}) and (?P<b>{NUM})", "{f:field}：必须在 {a} 到 {b} 之间"),
    (rf"{FIELD}: must be at least (?P<n>{NUM})", "{f:field}：不能小于 {n}"),
    (rf"{FIELD}: must be at most (?P<n>{NUM})", "{f:field}：不能大于 {n}"),
    (rf"{FIELD}: at most (?P<n>{NUM}) items?", "{f:field}：最多 {n} 项"),
    (rf"{FIELD}: at most (?P<n>{NUM}) keys", "{f:field}：最多 {n} 个键"),
    (rf"{FIELD}: at least (?P<n>{NUM}) items?", "{f:field}：至少 {n} 项"),
    (rf"{FIELD}: is required", "{f:field}：必填"),
    (rf"{FIELD}: unknown field", "{f:field}：未知字段"),
    (rf"{FIELD}: expected a whole number", "{f:field}：应为整数"),
    (r"send a JSON body with Content-Type: application/json",
     "请发送 JSON 请求体（Content-Type: application/json）"),
    (r"the body is not valid JSON", "请求体不是有效的 JSON"),
    # --- bad input anywhere (services/safe_json.py, web/bad_input.py) --------------
    (rf"the JSON nests deeper than (?P<n>{NUM}) levels", "JSON 嵌套超过 {n} 层"),
    (rf"the JSON body may be at most (?P<n>{NUM}) bytes", "JSON 请求体最多 {n} 字节"),
    (r"the body is not valid UTF-8 text", "请求体不是有效的 UTF-8 文本"),
    # Werkzeug's 413 as ours (web/api._too_large_body)
    (r"the request body may be at most (?P<s:size>.+)", "请求体最大 {s:size}"),
    (r"the request is too large", "请求太大了"),
    (rf"{FIELD}: contains a NUL character or a lone surrogate, which is not text",
     "{f:field}：包含 NUL 字符或不成对的代理字符，不是有效的文本"),
    (rf"{FIELD}: a key contains a NUL character or a lone surrogate, which is not text",
     "{f:field}：有字段名包含 NUL 字符或不成对的代理字符，不是有效的文本"),
    (r"a parameter name contains a NUL character or a lone surrogate, which is not text",
     "有参数名包含 NUL 字符或不成对的代理字符，不是有效的文本"),
    (rf"{FIELD}: must be a day between (?P<a>.+) and (?P<b>.+)", "{f:field}：日期须在 {a} 到 {b} 之间"),
    # --- URLs (services/validation.http_url: iframe panels, sinks, channels) ---------
    # before the channels' "config.url: …" catch-all below, which would keep them English
    (rf"{FIELD}: must start with http:// or https://", "{f:field}：必须以 http:// 或 https:// 开头"),
    (rf"{FIELD}: has no host name", "{f:field}：缺少主机名"),
    (rf"{FIELD}: must not contain a user name or password", "{f:field}：不能包含用户名或密码"),
    (rf"{FIELD}: must not contain spaces or control characters", "{f:field}：不能包含空格或控制字符"),
    (rf"{FIELD}: the port must be a number from 1 to 65535",
     "{f:field}：端口必须是 1 到 65535 之间的数字"),
    (rf"{FIELD}: the host name or IP address is not valid", "{f:field}：主机名或 IP 地址无效"),
    # --- signing in, accounts, permissions -----------------------------------------
    (rf"{FIELD}: mix at least two of letters, digits and symbols", "{f:field}：至少包含字母、数字、符号中的两种"),
    (rf"{FIELD}: this password is too common", "{f:field}：这个密码太常见了，请换一个"),
    (r"email: an account with this email already exists", "邮箱：这个邮箱已经有账号了"),
    (rf"{FIELD}: another agent of the team already goes by this name",
     "{f:field}：团队里已有客服使用这个名字"),
    (rf"{FIELD}: this name begins with another agent's name, so an @mention could not "
     r"tell the two apart", "{f:field}：这个名字以另一位客服的名字开头，@提及时无法区分两人"),
    (rf"{FIELD}: must not contain invisible characters", "{f:field}：不能包含看不见的字符"),
    (r"registration is closed: ask an admin to create your account", "注册已关闭：请联系管理员为你创建账号"),
    (r"only admins may do this", "只有管理员可以这样做"),
    (r"only admins may change this", "只有管理员可以修改这一项"),
    (rf"{FIELD}: no such id in this team: (?P<i>.+)", "{f:field}：本团队没有这个 ID：{i}"),
    (r"no such agent", "没有这个客服"),
    (r"name: a group with this name exists", "名称：已有同名分组"),
    (r"no such group", "没有这个分组"),
    (rf"{FIELD}: the team needs at least one admin", "{f:field}：团队至少需要一名管理员"),
    (r"email and password are required", "请填写邮箱和密码"),
    (r"too many login attempts: try again later", "登录尝试次数太多，请稍后再试"),
    (r"too many registrations from this address: try again later",
     "从这个地址注册的次数太多，请稍后再试"),
    (r"current_password: the current password is wrong", "当前密码：当前密码不正确"),
    (r"this password reset link is invalid, used or expired: ask an admin for a new one",
     "这个重置密码链接无效、已用过或已过期：请找管理员重新生成"),
    (r"password2: the two passwords differ", "再次输入：两次输入的密码不一致"),
    (r"the checklist can be hidden once every step is done", "所有步骤完成后才能隐藏此清单"),
    (r"password: required", "密码：必填"),
    (r"agent: the account is deactivated: activate it first", "客服：该账号已停用，请先启用"),
    (r"no agent with the email (?P<e>.+)", "没有邮箱为 {e} 的客服"),
    (r"API tokens may not do this: sign in with your password", "API 令牌不能执行此操作：请用密码登录"),
    (r"API tokens may not change passwords or emails: sign in with your password",
     "API 令牌不能修改密码或邮箱：请用密码登录"),
    (r"this API token's scope \((?P<s>.+)\) does not allow this: it needs (?P<n>.+)",
     "此 API 令牌的权限范围（{s}）不允许此操作：需要 {n}"),
    # a request an actor_from_request plugin (single sign-on) signed in, not a token
    (r"the scope plugin (?P<p>\S+) gave this request \((?P<s>.+)\) does not allow this: "
     r"it needs (?P<n>.+)", "插件 {p} 给此请求的权限范围（{s}）不允许此操作：需要 {n}"),
    (r"a request signed in by plugin (?P<p>\S+) may not do this: sign in with your password",
     "由插件 {p} 登录的请求不能执行此操作：请用密码登录"),
    (r"a request signed in by plugin (?P<p>\S+) may not change passwords or emails: sign in "
     r"with your password", "由插件 {p} 登录的请求不能修改密码或邮箱：请用密码登录"),
    (r"the visitor token has expired: renew it or start a new session",
     "访客令牌已过期：请续期或重新开始会话"),
    (r"renew_key: wrong renewal key", "续期密钥：续期密钥不正确"),
    (r"wrong email or password", "邮箱或密码错误"),
    (r"no such token", "没有这个令牌"),
    (r"CSRF token missing or wrong: reload the page", "安全令牌（CSRF）缺失或有误：请刷新页面"),
    (r"log in or send an API token", "请先登录，或提供 API 令牌"),
    (r"log in first", "请先登录"),
    (r"your session has ended: log in again", "您的登录已失效，请重新登录"),
    (r"visitor token required", "缺少访客令牌"),
    (r"invalid visitor token", "访客令牌无效"),
    (r"no such page", "没有这个页面"),
    (r"no such language", "不支持这种语言"),
    # --- conversations, messages, transfer, rating ---------------------------------
    (r"no such conversation", "没有这个对话"),
    (r"no conversation matches these filters", "没有符合这些筛选条件的对话"),
    (r"the conversation has ended: start a new one", "对话已结束：请开始新的对话"),
    (r"the conversation has ended: only internal notes can be added", "对话已结束：只能添加内部备注"),
    (r"the conversation has ended; uploads are closed", "对话已结束，不能再上传文件"),
    (r"the conversation has ended", "对话已结束"),
    (r"the conversation has already ended", "对话已经结束了"),
    (r"the conversation changed: not ended", "对话刚刚有了变化，没有结束"),
    (r"you were @mentioned in this conversation: you may read it and write in it, not "
     r"take it over or transfer it", "您是被 @ 提及才看到这个对话的：可以查看和回复，不能接入或转接"),
    (r"give either agent_id or group_id", "请选择转给客服（agent_id）或分组（group_id），二选一"),
    (r"agent_id: no such agent in this team", "客服：本团队没有这个客服"),
    (r"group_id: no such group in this team", "分组：本团队没有这个分组"),
    (r"someone else took this conversation a moment ago", "其他客服刚刚接入了这个对话"),
    (r"(?P<who>.+) took this conversation a moment ago", "{who} 刚刚接入了这个对话"),
    (r"(?P<who>.+) handles it already", "{who} 已经在接待这个对话了"),
    (r"(?P<who>.+) is not online: a chat can only be transferred to an agent with the "
     r"workspace open", "{who} 不在线：对话只能转给在线（已打开工作台）的客服"),
    (rf"(?P<who>.+) is at the limit \((?P<load>{NUM})/(?P<max>{NUM})\)",
     "{who} 的接待量已达上限（{load}/{max}）"),
    (r"mode: anonymous replies need a handler", "发送方式：对话有接待客服时才能匿名回复"),
    (r"rating opens when an agent invites you or the chat ends", "客服邀请评价或对话结束后才可以评价"),
    (r"you have rated this conversation already", "您已经评价过这个对话了"),
    (r"after_seq: conversation_id:seq pairs separated by commas",
     "续传位置：须为以逗号分隔的“会话编号:序号”"),
    (rf"after_seq: at most (?P<n>{NUM}) conversations", "续传位置：最多 {n} 个会话"),
    (r"after_seq: ids and positions are whole numbers up to 2147483647",
     "续传位置：会话编号和序号须为不超过 2147483647 的整数"),
    (r"after_seq: a whole number from 0 to 2147483647", "续传位置：须为 0 到 2147483647 之间的整数"),
    (r"after: a whole number from 0 to 2147483647", "续传的消息编号：须为 0 到 2147483647 之间的整数"),
    (r"client_msg_id: 1-64 letters, digits, '-', '_', '\.' or ':'",
     "client_msg_id：须为 1-64 个字母、数字或 '-'、'_'、'.'、':'"),
    (r"message refused: (?P<why>.*)", "消息被拒绝：{why}"),
    (r"the message was not sent: plugin (?P<p>.+) could not check it \((?P<h>\S+) "
     r"(?P<k:hook>.+)\); send it again",
     "消息未发送：插件 {p} 未能检查这条消息（{h} {k:hook}）：请重新发送"),
    # --- uploads and attachments (services/uploads.py) -----------------------------
    (r"file: an image may be at most (?P<s:size>.+)", "文件：图片最大 {s:size}"),
    (r"file: a file may be at most (?P<s:size>.+)", "文件：文件最大 {s:size}"),
    # the hourly upload quotas (services/upload_quota.py)
    (r"file: uploads are limited to (?P<s:size>.+) an hour; this file is larger",
     "文件：每小时最多上传 {s:size}，这个文件超过了"),
    (rf"upload quota: you may upload at most (?P<n>{NUM}) files an hour; try again in "
     rf"(?P<m>{NUM}) minutes", "上传次数已达上限：每小时最多上传 {n} 个文件，请 {m} 分钟后再试"),
    (rf"upload quota: you may upload at most (?P<s:size>.+) an hour; try again in "
     rf"(?P<m>{NUM}) minutes", "上传量已达上限：每小时最多上传 {s:size}，请 {m} 分钟后再试"),
    (rf"upload quota: this site takes at most (?P<n>{NUM}) files an hour from its visitors; "
     rf"try again in (?P<m>{NUM}) minutes",
     "本网站访客的上传次数已达上限：每小时最多 {n} 个文件，请 {m} 分钟后再试"),
    (rf"upload quota: this site takes at most (?P<s:size>.+) an hour from its visitors; "
     rf"try again in (?P<m>{NUM}) minutes",
     "本网站访客的上传量已达上限：每小时最多 {s:size}，请 {m} 分钟后再试"),
    (r"file: the file is empty", "文件：文件是空的"),
    (r"file: (?P<name>.+) is not a PNG, JPEG, GIF or WebP image \(the content was checked, "
     r"not the name; SVG is not accepted\)",
     "文件：{name} 不是 PNG、JPEG、GIF 或 WebP 图片（按文件内容检查，不看文件名；不接受 SVG）"),
    (r"kind: image or file", "类型：应为 image（图片）或 file（文件）"),
    (r"send multipart/form-data with the file in the field 'file'",
     "请以 multipart/form-data 发送，文件放在字段 'file' 中"),
    (r"file: attach the file as the multipart field 'file'", "文件：请把文件放在 multipart 字段 'file' 中"),
    (r"file: send one file, in the field 'file'", "文件：只能发送一个文件，放在字段 'file' 中"),
    (r"the upload ended before the file was complete", "文件还没传完，上传就中断了"),
    (r"the multipart body is malformed", "multipart 请求体格式有误"),
    (rf"{FIELD}: too long", "{f:field}：太长了"),
    (r"no such attachment", "没有这个附件"),
    (r"attachment: required for images and files", "附件：图片和文件消息必须带附件"),
    (r"attachment: no such upload in this conversation", "附件：这个对话中没有这个上传的文件"),
    (r"attachment: this upload is a file, not an image", "附件：上传的是文件，不是图片"),
    # --- the widget: session, leave-a-message form ---------------------------------
    (r"no such team", "没有这个团队"),
    (r"no such visitor", "没有这个访客"),
    (r"custom: keys are 1-60 characters", "自定义信息：键须为 1-60 个字符"),
    (r"custom\.(?P<k>.+): expected text or a number", "自定义信息 {k}：应为文本或数字"),
    (r"phone: not a valid phone number \(a mobile like 13800138000, a landline with its area "
     r"code like 021-12345678, or \+8613800138000\)",
     "电话：电话号码不正确（手机号如 13800138000，固话带区号如 021-12345678，或 +8613800138000）"),
    (r"email: not a valid email address, e\.g\. name@example\.com",
     "邮箱：邮箱格式不正确，例如 name@example.com"),
    (r"phone: leave a phone or an email so we can reply", "电话：请留下电话或邮箱，方便我们回复您"),
    (r"phone: leave a phone so we can reply", "电话：请留下电话，方便我们回复您"),
    (r"email: leave a email so we can reply", "邮箱：请留下邮箱，方便我们回复您"),
    (r"name: tell us your name", "姓名：请填写您的称呼"),
    (r"content: tell us what it is about", "内容：请填写留言内容"),
    (r"attachments: this form takes no attachments", "附件：此表单不接受附件"),
    (r"attachments: (?P<k>.+) is not an upload of yours", "附件：{k} 不是您上传的文件"),
    (rf"attachments: at most (?P<n>{NUM}) MB together", "附件：合计最多 {n} MB"),
    # --- tickets, ticket sinks ------------------------------------------------------
    (r"no such ticket", "没有这个工单"),
    (r"assignee_id: no such agent you may assign to", "处理人：没有这个你可以指派的客服"),
    (r"status: cannot go from (?P<a>\S+) to (?P<b>\S+); allowed: none \(closed is final\)",
     "状态：不能从 {a} 改为 {b}；已关闭是最终状态，不能再改"),
    (r"status: cannot go from (?P<a>\S+) to (?P<b>\S+); allowed: (?P<c>.+)",
     "状态：不能从 {a} 改为 {b}；可以改为：{c}"),
    (r"until: must not be before since", "截止时间：不能早于开始时间"),
    (rf"{FIELD}: expected a date like 2026-11-24 or a date-time like 2026-11-24T08:00:00Z",
     "{f:field}：应为日期（如 2026-11-24）或日期时间（如 2026-11-24T08:00:00Z）"),
    (r"type: unknown sink; one of (?P<c>.*)", "类型：未知的推送类型，可选：{c}"),
    (r"type: cannot change; add a new sink instead", "类型：不能修改，请另外添加一个推送"),
    (r"no such ticket sink", "没有这个工单推送"),
    # what an agent is told about emailing a public reply (services/tickets.reply_email)
    (r"the customer will not be emailed: he left no email address; he reads the reply in "
     r"the widget next time he visits",
     "不会给客户发邮件：客户没有留下邮箱；客户下次访问时会在网页插件中看到回复"),
    (r"the customer will not be emailed: no email ticket sink is configured \(an admin adds "
     r"one under Admin → Ticket sinks; its SMTP settings send the replies\); he reads the "
     r"reply in the widget next time he visits",
     "不会给客户发邮件：尚未配置邮件工单推送（管理员可在“管理 → 工单推送”中添加，回复通过它的 "
     "SMTP 设置发送）；客户下次访问时会在网页插件中看到回复"),
    (r"the customer will not be emailed: the email could not be queued \(the job queue is "
     r"unreachable\); he reads the reply in the widget next time he visits",
     "不会给客户发邮件：邮件未能加入发送队列（任务队列无法连接）；客户下次访问时会在网页插件中"
     "看到回复"),
    (r"emailed to (?P<e>\S+)", "已通过邮件发送至 {e}"),
    # --- channels (meiqia/channels/, services/channels.py) ---------------------------------
    (r"no such channel", "没有这个渠道"),
    (r"config: save the settings first, or send them to test",
     "配置：请先保存设置，或随请求发送要测试的设置"),
    (rf"{FIELD}: must be an http:// or https:// URL", "{f:field}：必须是 http:// 或 https:// 开头的网址"),
    (rf"{FIELD}: enter the secret", "{f:field}：请填写密钥"),
    (rf"{FIELD}: (?P<c>\S+) changed: enter the secret again \(a saved secret is only "
     r"sent to the server it was saved for\)",
     "{f:field}：{c:field}已更改，请重新输入（已保存的密钥只发往保存时的服务器）"),
    (r"this conversation's channel cannot carry rating invitations",
     "该对话所在的渠道不支持评价邀请"),
    (r"only a failed or retrying message delivery can be retried; this one is (?P<s>.+)",
     "只有发送失败或等待重试的消息可以重发；这条的状态是 {s}"),
    (r"this message is already being sent again", "这条消息正在重发"),
    (r"the conversation kept ending while the message arrived; send it again",
     "消息到达时对话刚好结束，请重新发送"),
    (r"attachments: Attachment objects with data", "附件：应为带有文件内容的 Attachment 对象"),
    (r"metadata: expected an object", "元数据：应为对象"),
    (rf"metadata: at most (?P<n>{NUM}) bytes as JSON", "元数据：JSON 最多 {n} 字节"),
    (r"metadata: must be JSON \(text, numbers, lists, objects\)",
     "元数据：必须是 JSON（文本、数字、列表、对象）"),
    (r"no such delivery", "没有这条推送记录"),
    (r"this delivery was delivered; there is nothing to retry", "这条推送已送达，无需重试"),
    (r"this delivery is being sent right now; retry once it ends",
     "这条推送正在发送，请等它结束后再重试"),
    (r"this delivery changed meanwhile; look again before retrying",
     "这条推送刚刚有了变化，请刷新后再决定是否重试"),
    (r"config\.url: needs a host", "网址：缺少主机名"),
    (r"config\.encoding_aes_key: the (?P<m>safe|compatible) mode needs the EncodingAESKey "
     r"\(43 letters and digits, from the WeChat console\), or choose the plain mode",
     "EncodingAESKey：{m} 模式（安全/兼容模式）需要填写 EncodingAESKey（43 位字母和数字，"
     "在微信公众平台获取），或改用明文模式"),
    # a delivery's last error (the built-in sinks' failures), shown on the sinks page
    (r"webhook answered HTTP (?P<n>\d+) \(a redirect to (?P<u>.*)\); redirects are not "
     r"followed: set the final URL", "Webhook 返回 HTTP {n}（重定向到 {u}）；不会跟随重定向：请填写最终地址"),
    (r"webhook answered HTTP (?P<n>\d+)", "Webhook 返回 HTTP {n}"),
    (r"the SMTP server refused the user name or password", "SMTP 服务器拒绝了用户名或密码"),
    (r"the SMTP server at (?P<h>.+) broke off during STARTTLS or login",
     "SMTP 服务器 {h} 在 STARTTLS 或登录时断开了连接"),
    (r"the sink was disabled; enable it and retry", "该推送已停用；请启用后重试"),
    (r"no plugin provides the sink type (?P<t>.+) any more", "已没有插件提供推送类型 {t}"),
    # a delivery (sink or channel) whose plugin an admin turned off for the team, and
    # a channel's own delivery failures (channels/outbound.py, channels/base.py)
    (r"the plugin (?P<p>\S+) is turned off for this team \(Plugins page\)",
     "插件 {p} 已对本团队关闭（插件页）"),
    (r"the plugin (?P<p>\S+) is turned off for this team", "插件 {p} 已对本团队关闭"),
    (r"no plugin provides the channel (?P<c>.+) any more", "已没有插件提供渠道 {c}"),
    (r"the channel (?P<c>\S+) is not enabled for this team \(Channels page\); enable it "
     r"and retry", "本团队未启用渠道 {c}（渠道页）；请启用后重试"),
    (r"the conversation or message was deleted", "会话或消息已被删除"),
    (r"the (?P<c>\S+) channel cannot send messages", "渠道 {c} 不能发送消息"),
    # a plugin's validate_config that raised something other than ValueError
    (r"config: the plugin's validate_config raised (?P<e>.+)",
     "配置：插件的配置检查（validate_config）出错：{e}"),
    (r"could not queue: (?P<e>.+)", "无法排队：{e}"),
    # how the plugin runtime describes a failed call (plugin_runtime.Failure.describe);
    # before the field rules below, which would read "raised X" as a field
    (r"raised (?P<e>.+)", "出错：{e:stored}"),
    (r"timed out: all its threads are still running \((?P<d:hook>.+)\)",
     "超时：它的线程都还在运行（{d:hook}）"),
    (r"timed out after (?P<s>[\d.]+)s", "超时（超过 {s} 秒）"),
    (r"timed out after (?P<d>.+)", "超时（{d}）"),
    (r"skipped: the plugin is suspended by the circuit breaker until (?P<t>\S+)",
     "已跳过：插件已被熔断器暂停，直到 {t}"),
    (r"the sink (?P<p>\S+) is still busy with another delivery \(one at a time\); "
     r"retried later", "对接 {p} 还在处理另一次投递（一次一个），稍后重试"),
    (r"returned an unusable result: (?P<d:hook>.+)", "返回的结果无法使用：{d:hook}"),
    # the SSRF gate (services/outbound.py), under the field of the setting it checks
    (rf"{FIELD}: (?P<h>.+) resolves to (?P<a>\S+), a private address \((?P<r>[\w-]+)\): the "
     r"server does not connect there \(the operator may allow private networks for the "
     r"whole instance with OUTBOUND_ALLOWED_NETWORKS\)",
     "{f:field}：{h} 解析为 {a}，是内网地址（{r}）：服务器不会连接到那里（运维人员可以用"
     "实例配置 OUTBOUND_ALLOWED_NETWORKS 为整个实例放行内网）"),
    (rf"{FIELD}: cannot resolve (?P<h>.+): no such host", "{f:field}：无法解析 {h}：没有这个主机"),
    (rf"{FIELD}: (?P<h>.+) has no address", "{f:field}：{h} 没有地址"),
    (rf"{FIELD}: only http and https URLs", "{f:field}：只支持 http 和 https 网址"),
    (rf"{FIELD}: the URL needs a host", "{f:field}：网址缺少主机名"),
    (rf"{FIELD}: not a valid URL: (?P<e>.+)", "{f:field}：不是有效的网址：{e}"),
    # the same refusals stored without a field (a delivery's or a plugin's last error)
    (r"(?P<h>.+) resolves to (?P<a>\S+), a private address \((?P<r>[\w-]+)\): the "
     r"server does not connect there \(the operator may allow private networks for the "
     r"whole instance with OUTBOUND_ALLOWED_NETWORKS\)",
     "{h} 解析为 {a}，是内网地址（{r}）：服务器不会连接到那里（运维人员可以用"
     "实例配置 OUTBOUND_ALLOWED_NETWORKS 为整个实例放行内网）"),
    (r"cannot resolve (?P<h>\S+): no such host", "无法解析 {h}：没有这个主机"),
    (r"no host given", "没有给出主机"),
    (r"the host name or IP address is not valid", "主机名或 IP 地址无效"),
    (r"(?P<h>\S+) has no address", "{h} 没有地址"),
    (r"config\.url: no user or password in the URL; sign with the secret instead",
     "网址：网址中不能有用户名或密码，请改用密钥签名"),
    (r"config\.url: (?P<e>.+)", "网址：{e}"),
    (r"config: (?P<e>.+)", "配置：{e}"),
    # --- quick replies --------------------------------------------------------------
    (r"keyword: no spaces; it is typed after # in one go", "关键词：不能有空格（在 # 后一口气输入）"),
    (r"keyword: contains control characters", "关键词：包含控制字符"),
    (r"keyword: #(?P<k>.+) exists already for the team", "关键词：团队已有 #{k}"),
    (r"keyword: #(?P<k>.+) exists already for you", "关键词：你已有 #{k}"),
    (r"only admins manage team-wide quick replies", "只有管理员可以管理团队快捷回复"),
    (r"no such quick reply", "没有这条快捷回复"),
    # --- knowledge base, bot, unrecognised questions --------------------------------
    (r"questions: at least one non-empty question", "问题：至少需要一个不为空的问题"),
    (r"no such knowledge-base entry", "没有这条知识库问答"),
    (r"key: an entry with this id exists", "问答 ID：已有这个 ID 的问答"),
    (r"file: attach the KB file as multipart field 'file'", "文件：请把知识库文件放在 multipart 字段 'file' 中"),
    (r"file: expected a \.yaml, \.csv or \.xlsx file", "文件：应为 .yaml、.csv 或 .xlsx 文件"),
    (rf"file: larger than (?P<n>{NUM}) MB", "文件：超过 {n} MB"),
    (r"file: (?P<name>[^:]+): (?P<p:kb>.+)", "文件：{name}：{p:kb}"),
    (r"question: the question must be text", "问题：问题必须是文本"),
    (r"question: the question is empty", "问题：问题是空的"),
    (r"question: the question looks like binary data, not text", "问题：问题看起来是二进制数据，不是文本"),
    (r"question: the question has no words \(only emoji or punctuation\)", "问题：问题里没有文字（只有表情或标点）"),
    (r"question_ids: some questions are not in this team", "问题：有些问题不属于本团队"),
    # the team's bot words (bot/lexicon.check_words, PATCH /team): a group by its line
    (r"settings\.bot_synonyms: line (?P<n>\d+) \((?P<g>.*)\): a word is blank",
     "同义词第 {n} 行（{g}）：有一个词是空的"),
    (r"settings\.bot_synonyms: line (?P<n>\d+) \((?P<g>.*)\): \"(?P<w>.*)\" has no word the bot "
     r"reads \(only emoji, punctuation or filler words\)",
     "同义词第 {n} 行（{g}）：“{w}”中没有机器人能读的词（只有表情、标点或语气词）"),
    (r"settings\.bot_synonyms: line (?P<n>\d+) \((?P<g>.*)\): \"(?P<a>.*)\" and \"(?P<b>.*)\" are "
     r"the same word", "同义词第 {n} 行（{g}）：“{a}”和“{b}”对机器人是同一个词"),
    (r"settings\.bot_synonyms: line (?P<n>\d+) \((?P<g>.*)\): \"(?P<w>.*)\" is there twice",
     "同义词第 {n} 行（{g}）：“{w}”出现了两次"),
    (r"settings\.bot_user_words: a word is blank", "自定义词典：有一个词是空的"),
    (r"settings\.bot_user_words: \"(?P<w>.*)\" has a space \(a product word is one word; "
     r"separate words are separate product words\)",
     "自定义词典：“{w}”含有空格（一个产品词就是一个词；不同的词请分开写）"),
    (r"settings\.bot_user_words: \"(?P<w>.*)\" has no word the bot reads \(only emoji, "
     r"punctuation or filler words\)", "自定义词典：“{w}”中没有机器人能读的词（只有表情、标点或语气词）"),
    (r"no such job", "没有这个任务"),
    # a reindex job's name and progress (GET /jobs/<id>; services/knowledge, bot/index)
    (r"knowledge base reindex", "知识库重建索引"),
    (r"reading the entries", "正在读取问答"),
    (rf"normalising questions \((?P<i>{NUM}) of (?P<n>{NUM}) entr(?:y|ies)\)",
     "正在规范化问题（第 {i} 条，共 {n} 条问答）"),
    (rf"reading the meaning of (?P<n>{NUM}) questions? \((?P<d>{NUM}) done\)",
     "正在理解 {n} 个问题的语义（已完成 {d} 个）"),
    (rf"counting the n-grams of (?P<n>{NUM}) questions?", "正在统计 {n} 个问题的 n-gram"),
    (rf"training the classifier over (?P<n>{NUM}) entr(?:y|ies)", "正在用 {n} 条问答训练分类器"),
    (r"building the lookups", "正在建立查找表"),
    (rf"(?P<n>{NUM}) entr(?:y|ies), (?P<m>{NUM}) questions? indexed", "已索引 {n} 条问答、{m} 个问题"),
    (r"publishing the new version", "正在发布新版本"),
    (rf"(?P<n>{NUM}) entr(?:y|ies) indexed", "已索引 {n} 条问答"),
    # a job's failure as its record stores it (meiqia/jobs.py; the exports page shows it)
    (r"the worker stopped while running this job \(killed or crashed\)",
     "运行这个任务的进程中途停止了（被终止或崩溃）"),
    (r"the database failed during the job: (?P<e>.+)", "任务运行时数据库出错：{e}"),
    (r"the export job failed", "导出任务失败"),
    # an export job's name (GET /jobs/<id>; services/exports.start)
    (rf"history export (?P<n>{NUM})", "历史记录导出 {n}"),
    # why the bot keeps its default scale (bot/calibrate.py, GET /knowledge/calibration)
    (r"not measured yet", "尚未测量"),
    (r"default scale of this scoring model \(development sets\)",
     "此评分模型的默认刻度（来自开发集）"),
    (rf"too few questions to measure \((?P<n>{NUM}) held-out variants, (?P<m>{NUM}) held-out "
     rf"entries' questions; at least (?P<a>{NUM}) and (?P<b>{NUM}) needed\): default thresholds",
     "可用于测量的问题太少（留出的问法 {n} 个，留出问答的问题 {m} 个；分别至少需要 {a} 个和 {b} 个）："
     "使用默认阈值"),
    # --- history, exports, dashboard ------------------------------------------------
    (rf"(?P<t>{NUM}) conversations match: an export holds at most (?P<n>{NUM}); narrow the time range",
     "符合条件的对话有 {t} 个，一次最多导出 {n} 个：请缩小时间范围"),
    (r"no such export", "没有这个导出"),
    (r"the export is not ready yet", "导出文件还没有生成好"),
    (r"the export file is gone; export again", "导出文件已不存在：请重新导出"),
    (r"this export was made under a wider scope than yours now: make it again",
     "此导出是在比您现在更大的权限范围下生成的：请重新导出"),
    (rf"{FIELD}: expected true or false", "{f:field}：应为 true 或 false"),
    (rf"{FIELD}: must not be negative", "{f:field}：不能为负数"),
    (rf"{FIELD}: expected a whole number of seconds", "{f:field}：应为整数秒"),
    (rf"{FIELD}: expected a date like 2026-11-24, got (?P<v>.*)", "{f:field}：应为日期，例如 2026-11-24，收到的是 {v}"),
    (rf"{FIELD}: expected a date like 2026-11-24", "{f:field}：应为日期，例如 2026-11-24"),
    (rf"{FIELD}: one of (?P<c>.*)", "{f:field}：应为以下之一：{c}"),
    (r"columns: unknown column (?P<c>.+)", "列：未知的列 {c}"),
    # unknown filter names (services/history.check_filter_names, validation.check_query)
    (rf"{FIELD}: unknown filters? (?P<k:list>.+) \(accepted: (?P<a:list>.+)\)",
     "{f:field}：未知的筛选条件 {k:list}（可用的筛选条件：{a:list}）"),
    (r"unknown parameters? (?P<k:list>.+) \(accepted: (?P<a:list>.+)\)",
     "未知的参数 {k:list}（可用的参数：{a:list}）"),
    (r"columns: choose at least one column", "列：请至少选择一列"),
    (r"from: must not be after to", "开始日期：不能晚于结束日期"),
    (r"ended_from: must not be after ended_to", "结束时间从：不能晚于结束时间至"),
    (rf"from: a range of at most (?P<n>{NUM}) days", "开始日期：时间范围最多 {n} 天"),
    (r"grades: each grade once", "对话分级：每个等级只能出现一次"),
    # --- team settings, iframe plugins ----------------------------------------------
    (r"settings\.suggest_threshold: must not exceed answer_threshold",
     "“您是不是想问”阈值：不能高于直接回答阈值"),
    (rf"{FIELD}: (?P<s>.+): the port must be 1-65535", "{f:field}：{s} 的端口必须在 1 到 65535 之间"),
    (r"timezone: unknown time zone, e\.g\. Asia/Shanghai", "时区：未知的时区，例如 Asia/Shanghai"),
    (r"no such iframe plugin", "没有这个 iframe 插件"),
    (r"no such plugin", "没有这个插件"),
    # --- websocket frames (web/ws.py) -----------------------------------------------
    (rf"frames must be JSON text of at most (?P<n>{NUM}) bytes", "帧必须是不超过 {n} 字节的 JSON 文本"),
    (r"not valid JSON", "不是有效的 JSON"),
    (r"the server could not handle this frame", "服务器无法处理这一帧"),
    (r'expected \{"type": \.\.\., "data": \{\.\.\.\}\}', '应为 {"type": ..., "data": {...}}'),
    (r"data must be an object", "data 必须是对象"),
    (r"unknown message type (?P<k>.+)", "未知的消息类型 {k}"),
    (r"start a session first \(POST /api/v1/widget/session\)", "请先开始会话（POST /api/v1/widget/session）"),
    (r"the database is busy or unreachable; send it again", "数据库繁忙或无法连接：请重新发送"),
    (r"the server is busy; reconnect after retry_after_ms", "服务器繁忙：请在 retry_after_ms 毫秒后重新连接"),
    # --- a backing server down (web/unavailable.py, 503) -----------------------------
    (r"the database is busy or unreachable; try again in a moment", "数据库繁忙或无法连接：请稍后再试"),
    (r"the job queue \(Redis\) is busy or unreachable; try again in a moment",
     "任务队列（Redis）繁忙或无法连接：请稍后再试"),
    # --- werkzeug's own descriptions (unknown URL, wrong method, body too large) ----
    (r"The requested URL was not found on the server\. If you entered the URL manually "
     r"please check your spelling and try again\.", "服务器上没有这个地址。如果是手动输入的，请检查拼写后重试。"),
    (r"The method is not allowed for the requested URL\.", "这个地址不支持这种请求方法。"),
    (r"The data value transmitted exceeds the capacity limit\.", "发送的数据超过了大小上限。"),
    (r"The browser \(or proxy\) sent a request that this server could not understand\.",
     "服务器无法理解这个请求。"),
    (r"The server does not support the media type transmitted in the request\.",
     "服务器不支持请求中的数据类型。"),
]

#: A pattern's ``(?P<name:converter>`` (a group name cannot hold ":").
_NAMED = re.compile(r"\(\?P<(\w+):\w+>")

Rule = tuple[re.Pattern[str], str]


def _compile(pairs: list[tuple[str, str]]) -> list[Rule]:
    """Compile each pattern as a whole-message match; ``(?P<x:conv>`` becomes a plain
    group ``x`` (the template says which converter its value goes through)."""
    return [(re.compile(_NAMED.sub(r"(?P<\1>", pattern), re.DOTALL), zh) for pattern, zh in pairs]


RULES: list[Rule] = _compile(_PAIRS)
KB_RULES: list[Rule] = _compile(_KB_PAIRS)
HOOK_RULES: list[Rule] = _compile(_HOOK_PAIRS)

_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")


def _kb(text: str) -> str:
    """The problems of a KB file, ``; ``-separated, each by ``KB_RULES``."""
    parts = text.split("; ")
    done = [_apply(KB_RULES, part) or _apply(RULES, part) for part in parts]
    if all(d is not None for d in done):
        return "；".join(d for d in done if d is not None)
    return "; ".join(d if d is not None else part for d, part in zip(done, parts, strict=True))


def _kbitem(text: str) -> str:
    return _apply(KB_RULES, text) or _apply(RULES, text) or text


def _hook(text: str) -> str:
    """A detail of a plugin's failed call (``HOOK_RULES``, else the API's rules: a
    panel's URL is refused in the words of the URL check); unknown: as is. The key the
    problem is about stays as the plugin wrote it (``url``, not the API's label 网址):
    docs/plugins.md, "Names in every failure"."""
    done = _apply(HOOK_RULES, text)
    if done is not None:
        return done
    done = _apply(RULES, text)
    if done is None:
        return text
    key = re.match(r"(\w+): ", text)
    if key is not None:
        label = field_label(key.group(1)) + "："
        if done.startswith(label):
            return key.group(1) + "：" + done[len(label):]
    return done


def _dropped(text: str) -> str:
    """``candidate 1: …; candidate 3: … (and 2 more)``: each item by ``_hook``."""
    more = re.search(r" (\(and \d+ more\))$", text)
    if more is not None:
        text = text[:more.start()]
    done = "；".join(_hook(part) for part in text.split("; "))
    return done + (_hook(more.group(1)) if more is not None else "")


#: The items of a plugin's list answer, and Python's names of what it returned.
_NOUNS = {"candidate": "候选答案", "panel": "面板", "link": "链接"}
_PY_TYPES = {"nothing": "空值（None）"}


_CONVERTERS: dict[str, Callable[[str], str]] = {
    "field": field_label, "types": _types, "size": _size, "kb": _kb, "kbitem": _kbitem,
    "stored": lambda text: translate_stored(text, "zh-CN"),
    "list": lambda text: text.replace(", ", "、"),
    "api": lambda text: translate(text, "zh-CN"),
    "hook": _hook, "dropped": _dropped,
    "noun": lambda text: _NOUNS.get(text, text),
    "type": lambda text: _PY_TYPES.get(text, text),
}


def _apply(rules: list[Rule], message: str, subject: str | None = None,
           params: dict[str, str] | None = None) -> str | None:
    for pattern, zh in rules:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        values = match.groupdict()

        def fill(placeholder: re.Match[str], values: dict[str, Any] = values) -> str:
            name, converter = placeholder.group(1), placeholder.group(2)
            value = values.get(name)
            if value is None:  # not a group of ours: literal text of the template
                return placeholder.group(0)
            if converter == "field":  # what the request is about names the field
                return field_label(value, subject, params)
            return _CONVERTERS[converter](value) if converter else value

        return _PLACEHOLDER.sub(fill, zh)
    return None


def translate(message: str, lang: str, subject: str | None = None,
              params: dict[str, str] | None = None) -> str:
    """``message`` in ``lang``; English (and anything unknown) is returned as is.
    ``subject``: what the request is about (``subject_of``), for its fields' labels;
    ``params``: the labels of its route's path parameters (``path_labels``)."""
    if lang != "zh-CN" or not message:
        return message
    return _apply(RULES, message, subject, params) or message


def translate_stored(message: str, lang: str) -> str:
    """A failure stored as ``ExceptionName: message`` (a sink delivery's or a plugin's
    last error) in ``lang``: the message translated without its exception's name; a
    message no rule knows (the system's own words, ``[Errno 111] …``) stays whole."""
    kind, sep, rest = (message or "").partition(": ")
    inner = rest if sep and kind.isidentifier() and kind[:1].isupper() else message
    text = translate(inner, lang)
    return text if text != inner else message


#: ``SinkFailed: `` / ``raised OutboundRefused: ``: how a stored failure names the
#: exceptions it went through (a Python class name: capitalised, a small letter in it,
#: no spaces; a dotted path too). ``IMAP: `` or ``SMTP: `` is no class.
_EXCEPTION_PREFIX = re.compile(
    r"(?:raised )?(?:[A-Za-z_]\w*\.)*[A-Z]\w*[a-z]\w*: ", re.ASCII)


def stored_reason(message: str) -> str:
    """A stored failure (``SinkFailed: raised OutboundRefused: cannot resolve x``)
    without the names of the exceptions it went through: the reason an admin reads
    (``cannot resolve x``), in English. docs/security.md §10: no class names in an
    error field; the stored text keeps them for the server's log and support."""
    text = message or ""
    while True:
        found = _EXCEPTION_PREFIX.match(text)
        if found is None or not text[found.end():].strip():
            return text
        text = text[found.end():]


def read_stored(message: str, lang: str) -> tuple[str, str | None]:
    """A stored failure as a reader gets it: ``(reason in lang, English reason)``,
    the second None when the two are the same (nothing to translate)."""
    reason = stored_reason(message)
    text = translate(reason, lang)
    return text, (reason if text != reason else None)


def localise(error: dict[str, Any], lang: str, subject: str | None = None,
             params: dict[str, str] | None = None) -> dict[str, Any]:
    """An error object (``{"code", "message", "field", ...}``) with its message in
    ``lang``; when it was translated, the English original is kept as
    ``message_en`` (for logs, support tickets and clients that match on text).
    ``code`` and ``field`` never change. ``subject``, ``params``: as for ``translate``."""
    message = error.get("message")
    if not isinstance(message, str):
        return error
    text = translate(message, lang, subject, params)
    if text == message:
        return error
    return {**error, "message": text, "message_en": message}
