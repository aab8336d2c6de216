"""The same bot everywhere (issue 18, item 6): ``meiqia bot ask`` and ``meiqia bot
eval`` ask every plugin's answerer exactly as the live bot does, and the merge
rules of docs/plugins.md ("How the bot merges answerers") hold."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from meiqia.bot import answers
from tests.unit.test_cli import meiqia

KB = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.en.yaml"

#: An answerer plugin as an author writes it, dropped into the instance folder.
WEATHER = textwrap.dedent('''
    from meiqia.hookspecs import hookimpl

    SEEN = []


    class Weather:
        name = "weather"
        priority = 5

        def answer(self, question, conversation):
            # A stand-in conversation outside a chat: id None, the team (or None).
            assert conversation.id is None and conversation.status == "bot"
            if "weather" in question or "天气" in question:
                return [{"entry_id": "weather:today", "question": "What is the weather",
                         "answer": "Sunny, 25 °C.", "score": 0.93}]
            return []


    @hookimpl
    def register_answerers(app):
        return [Weather()]
''')


def _install(tmp_path: Path) -> None:
    folder = tmp_path / "inst" / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weather.py").write_text(WEATHER, encoding="utf-8")


def test_bot_ask_asks_the_plugin_answerers_with_a_kb_file_and_with_the_team(tmp_path):
    _install(tmp_path)
    asked = meiqia(tmp_path, "bot", "ask", "--kb", str(KB), "what is the weather today").stdout
    assert "decision: answer" in asked, asked
    assert "[weather:today]" in asked and "(weather)" in asked
    assert "answer: Sunny, 25 °C." in asked
    # The knowledge base still answers what it knows, beside the plugin.
    assert "[pay-methods]" in meiqia(tmp_path, "bot", "ask", "--kb", str(KB),
                                     "do you take paypal").stdout
    meiqia(tmp_path, "init", "--no-demo-kb")
    team = meiqia(tmp_path, "bot", "ask", "what is the weather today").stdout
    assert "decision: answer" in team and "answer: Sunny, 25 °C." in team, team
    # Human words mean a person, as in a chat.
    assert "decision: human" in meiqia(tmp_path, "bot", "ask", "转人工").stdout


def test_bot_eval_measures_the_plugin_answerers_too(tmp_path):
    cases = tmp_path / "cases.csv"
    cases.write_text("query,expected_id\nwhat is the weather today,weather:today\n"
                     "do you take paypal,pay-methods\n")
    args = ("bot", "eval", "--kb", str(KB), "--cases", str(cases), "--json")
    without = json.loads(meiqia(tmp_path, *args).stdout)
    assert without["in_scope_accuracy"] == 0.5
    _install(tmp_path)
    result = json.loads(meiqia(tmp_path, *args).stdout)
    assert result["in_scope_accuracy"] == 1.0 and result["answer_precision"] == 1.0


def _cand(entry: str, score: float, answer: str = "a") -> dict:
    return {"entry_id": entry, "question": entry, "answer": answer, "score": score}


def test_one_candidate_per_entry_best_score_then_priority():
    merged = answers.merge([
        answers.Answered("kb", 0, [_cand("refund", 0.8, "kb"), _cand("ship", 0.6)]),
        answers.Answered("crm", 5, [_cand("refund", 0.8, "crm"), _cand("ship", 0.7, "crm")]),
    ], k=5)
    assert [(c["entry_id"], c["source"]) for c in merged] == [("refund", "crm"), ("ship", "crm")]


def test_equal_scores_are_ordered_by_priority_then_registration():
    merged = answers.merge([
        answers.Answered("first", 0, [_cand("a", 0.6)]),
        answers.Answered("second", 0, [_cand("b", 0.6)]),
        answers.Answered("urgent", 9, [_cand("c", 0.6)]),
        answers.Answered("best", -1, [_cand("d", 0.9)]),
    ], k=3)
    assert [c["entry_id"] for c in merged] == ["d", "c", "a"]


def test_malformed_candidates_are_dropped_and_reported_and_scores_clamped():
    malformed: list = []
    merged = answers.merge([answers.Answered("x", 0, [
        {"entry_id": "no-answer", "score": 0.9}, {"entry_id": "nan", "answer": "a",
                                                   "score": float("nan")},
        "not a dict", _cand("high", 7.0)])], k=5, malformed=malformed)
    assert merged == [{**_cand("high", 1.0), "source": "x"}]
    assert [source for source, _ in malformed] == ["x", "x", "x"]


def test_the_thresholds_apply_to_the_merged_first_candidate_whatever_its_source():
    found = [_cand("a", 0.69), _cand("b", 0.55), _cand("c", 0.5), _cand("d", 0.49)]
    decision = answers.decide(found, 0.7, 0.5)
    assert decision.kind == "suggest" and [c["entry_id"] for c in decision.shown] == [
        "a", "b", "c"]
    assert answers.decide(found, 0.69, 0.5).shown == found[:1]
    assert answers.decide(found[3:], 0.7, 0.5).kind == "unrecognised"
