"""docs/security.md §1 "Names are unique in a team": a look-alike is the same name.

Found by a docs-only check against ``meiqia run``: ``PATCH /api/v1/agents/3
{"nickname": "ＡｇｅｎｔＴｗｏ"}`` (the full-width form a Chinese IME types in 全角 mode)
was accepted beside the colleague AgentTwo, while "AgentTwo" and "agenttwo" were
refused; "Agent Two" too. A supervisor's note "@ＡｇｅｎｔＴｗｏ 请看一下" then made the
conversation visible to the impostor. The uniqueness check and the @mention
matching now use one fold (``services/names.name_key``: NFKC, case, spaces).
"""

from __future__ import annotations

from meiqia.models import Agent
from meiqia.models import Mention
from meiqia.services.messages import mentioned_agents
from meiqia.services.names import name_key
from tests.api.test_conversations import start
from tests.helpers import new_client_id


def note(agent, cid: int, body: str) -> None:
    sent = agent.post(f"/api/v1/conversations/{cid}/messages", json={
        "client_msg_id": new_client_id(), "body": body, "mode": "internal"})
    assert sent.status_code == 201, sent.get_json()


def test_a_lookalike_of_a_colleagues_name_is_refused_and_takes_no_mention(db_api):
    api = db_api.without_bot()
    boss = api.online_agent(email="boss@example.com", name="主管", scope="all")
    two = api.new_agent(email="two@example.com", name="AgentTwo", scope="self")
    three = api.new_agent(email="three@example.com", name="AgentThree", scope="self")
    me = f"/api/v1/agents/{three.agent['id']}"
    for field, value in (("nickname", "ＡｇｅｎｔＴｗｏ"), ("nickname", "Agent Two"),
                         ("nickname", "agenttwo"), ("name", "Ａｇｅｎｔ　Ｔｗｏ"),
                         ("name", "AGENT  two"), ("nickname", "ＡｇｅｎｔＴｗｏ 请看一下")):
        refused = three.patch(me, json={field: value})
        assert refused.status_code == 409, (field, value, refused.get_json())
        assert refused.get_json()["error"]["field"] == field
    created = api.post("/api/v1/agents", json={
        "email": "four@example.com", "name": "ＡＧＥＮＴＴＷＯ", "password": "copy-pass-123"})
    assert created.status_code == 409 and created.get_json()["error"]["field"] == "name"
    assert Agent.get_by_id(three.agent["id"]).nickname == ""

    cid = start(api.app, api.team["id"])[2]
    assert three.get(f"/api/v1/conversations/{cid}").status_code == 404
    # Full width, or with a space: the colleague, and only him.
    note(boss, cid, "@ＡｇｅｎｔＴｗｏ 请看一下")
    note(boss, cid, "@Agent Two 也看一下")
    assert {m.agent_id for m in Mention.select()} == {two.agent["id"]}
    assert two.get(f"/api/v1/conversations/{cid}").status_code == 200
    assert three.get(f"/api/v1/conversations/{cid}").status_code == 404

    # An older team whose two names fold together (saved before this check): a
    # mention of that name, in any form, goes to neither.
    Agent.update(nickname="ＡｇｅｎｔＴｗｏ").where(Agent.id == three.agent["id"]).execute()
    Mention.delete().execute()
    for body in ("@ＡｇｅｎｔＴｗｏ 请看一下", "@AgentTwo 看一下", "@agent two 看一下"):
        note(boss, cid, body)
    assert Mention.select().count() == 0
    assert three.get(f"/api/v1/conversations/{cid}").status_code == 404


def test_mentions_and_the_uniqueness_check_fold_alike():
    """One fold (names.name_key) for both; a mention written as an agent writes his
    name wins, then one written with other spaces, if only one name fits."""
    assert name_key("ＡｇｅｎｔＴｗｏ") == name_key("Agent Two") == name_key("agenttwo")
    team = [(1, "AgentTwo", ""), (2, "Agent", ""), (3, "李客服", ""), (4, "李客服2", "")]
    assert mentioned_agents("＠ＡｇｅｎｔＴｗｏ 请看一下", team) == [1]  # full-width @ too
    assert mentioned_agents("@agent two 看", team) == [2]  # "Agent", as written, wins
    assert mentioned_agents("@Agen tTwo 看", team) == [1]  # only AgentTwo fits
    assert mentioned_agents("@李客服 2号桌的客人", team) == [3]  # the space ends the name
    assert mentioned_agents("@李客服2号桌", team) == [4]
    assert mentioned_agents("a@agenttwo", team) == []  # an address
    # Two names fit a mention spaced like neither: it mentions neither.
    assert mentioned_agents("@Agent Two please", [(1, "AgentTwo", ""),
                                                  (5, "AgentTwoplease", "")]) == []
    # Older pairs that fold together mention neither, whatever the form.
    for pair in ([(1, "AgentTwo", ""), (6, "ＡｇｅｎｔＴｗｏ", "")],
                 [(1, "AgentTwo", ""), (6, "", "Agent Two")]):
        for body in ("@AgentTwo", "@Agent Two", "@ＡｇｅｎｔＴｗｏ"):
            assert mentioned_agents(body, pair) == [], (pair, body)


def test_a_run_on_across_another_spacing_is_refused(api):
    """"AgentTwo please" beside "Agent Two" is "@AgentTwo please" taken: refused as
    "x2 please" beside "x2" is; "Agent Two2" (a digit follows) is a numbered colleague."""
    api.new_agent(email="two@example.com", name="Agent Two", scope="self")
    other = api.new_agent(email="x@example.com", name="x", scope="self")
    me = f"/api/v1/agents/{other.agent['id']}"
    refused = other.patch(me, json={"nickname": "ＡｇｅｎｔＴｗｏ please"},
                          headers={"X-Meiqia-Lang": "en"})
    assert refused.status_code == 409, refused.get_json()
    assert "@mention" in refused.get_json()["error"]["message"]
    assert other.patch(me, json={"nickname": "AgentTwo2"}).status_code == 200


def test_kana_strokes_and_foreign_letters_drawn_alike_are_the_same_name(api):
    """An outside check: 客服ー (katakana ー) and 客服〡 were accepted as nicknames
    beside 客服一, and a new agent 客服ニ (katakana ニ) beside 客服二; NFKC keeps
    them apart. So would a Cyrillic е in AgentTwo. Each is now the name it looks like."""
    api.new_agent(email="one@example.com", name="客服一")
    api.new_agent(email="two@example.com", name="客服二")
    api.new_agent(email="shu@example.com", name="客服丨")
    api.new_agent(email="at@example.com", name="AgentTwo")
    one = api.new_agent(email="zhang@example.com", name="张三")
    me = f"/api/v1/agents/{one.agent['id']}"
    for value in ("客服ー", "客服〡", "客服㇐", "AgеntTwo", "ΑgentΤwo", "客服ニ"):
        refused = one.patch(me, json={"nickname": value})
        assert refused.status_code == 409, (value, refused.get_json())
    created = api.post("/api/v1/agents", json={
        "email": "three@example.com", "name": "客服ニ", "password": "copy-pass-123"})
    assert created.status_code == 409 and created.get_json()["error"]["field"] == "name"
    assert name_key("客服ロ") == name_key("客服口") and name_key("ルーシー") != name_key("客服一")
    # A name of its own, in kana or Cyrillic, is still taken.
    assert one.patch(me, json={"nickname": "ルーシー"}).status_code == 200
    assert one.patch(me, json={"nickname": "Дмитрий"}).status_code == 200
    # And a mention of the look-alike goes to the agent it looks like.
    assert mentioned_agents("@客服ー 看一下", [(1, "客服一", ""), (2, "客服二", "")]) == [1]


def test_every_character_that_folds_to_an_at_sign_starts_a_mention():
    """``names.AT_SIGNS`` is written out (scanning Unicode at import costs half a
    second): it must be every character NFKC folds to ``@``, else a note written with
    the one missing mentions nobody (``＠`` did, before)."""
    import unicodedata

    from meiqia.services import names

    folds_to_at = {c for c in map(chr, range(0x110000))
                   if unicodedata.normalize("NFKC", c) == "@"}
    assert names.AT_SIGNS == folds_to_at
