"""Self-calibration, synonyms and the jieba user dictionary (issue 20)."""

from __future__ import annotations

import json

from meiqia.bot.calibrate import ANSWER_POINT
from meiqia.bot.calibrate import Calibration
from meiqia.bot.calibrate import calibrate
from meiqia.bot.index import KBIndex
from meiqia.bot.kbfile import KBEntry
from meiqia.bot.lexicon import Lexicon

#: A small Chinese KB: distinct entries with several questions each, and two
#: entries that compete for the same questions (退款 to a card vs to the wallet).
TOPICS = {
    "invoice": ["怎么开发票", "发票怎么开", "能开发票吗", "如何申请发票", "开票流程是什么",
                "我要开发票", "电子发票怎么弄", "发票在哪里申请", "可以开增值税发票吗"],
    "ship-time": ["多久发货", "什么时候发货", "下单后几天发货", "发货要多长时间", "今天能发货吗",
                  "付款后多久发出", "几天能发出", "最快什么时候发", "发货时间是多久"],
    "express": ["用什么快递", "发什么快递", "默认哪家快递", "可以指定快递吗", "能发顺丰吗",
                "快递公司是哪家", "支持哪些快递", "能换快递吗", "发中通还是圆通"],
    "size": ["尺码怎么选", "尺码偏大吗", "尺码偏小吗", "怎么选尺码", "我该穿多大码",
             "尺码表在哪", "身高170穿什么码", "尺码准不准", "衣服码数标准吗"],
    "member": ["怎么成为会员", "会员有什么好处", "如何注册会员", "会员怎么开通", "会员费多少",
               "会员积分怎么用", "会员等级怎么算", "积分能换什么", "会员能打折吗"],
    "password": ["忘记密码怎么办", "密码怎么重置", "怎么修改密码", "登录密码忘了", "找回密码",
                 "密码错误登不上", "如何改密码", "账号密码忘了", "重置登录密码"],
    "refund-card": ["退款退到银行卡要多久", "退款多久到银行卡", "退款到卡上几天",
                    "银行卡退款什么时候到", "退款到账要几天", "退款什么时候到账",
                    "退款多久能到", "退的钱几天到账"],
    "refund-wallet": ["退款退到余额要多久", "退款多久到余额", "退款到钱包几天",
                      "余额退款什么时候到", "退款到账时间", "退款几天到账",
                      "退款要多久到", "退的钱多久到"],
}
ENTRIES = [KBEntry(key, questions, f"答案 {key}") for key, questions in TOPICS.items()]


def build(entries):
    return KBIndex(entries, background_rebuild=False)


def test_calibration_reports_the_two_competing_entries_with_their_questions(monkeypatch):
    import meiqia.bot.calibrate as cal

    # A KB this small is below the measuring minimum: lower it so that the
    # thresholds are set too, and check both the result and the competition.
    monkeypatch.setattr(cal, "MIN_IN_SCOPE", 5)
    monkeypatch.setattr(cal, "HOLD_EVERY", 2)
    # Eight entries: hold none out whole, so both refund entries are asked.
    monkeypatch.setattr(cal, "HOLD_ENTRY_EVERY", 100)
    monkeypatch.setattr(cal, "MIN_OUT_OF_SCOPE", 0)
    result = calibrate(ENTRIES, build, target=0.95)
    assert result.calibrated and result.reason == ""
    assert 0.0 <= result.suggest_score <= 1.0 and 0.0 <= result.answer_score <= 1.0
    assert result.in_scope >= 5 and result.out_of_scope == 0
    pairs = [tuple(p["entries"]) for p in result.competing]
    assert ("refund-card", "refund-wallet") in pairs, result.competing
    pair = result.competing[pairs.index(("refund-card", "refund-wallet"))]
    assert pair["questions"] and all("退" in q for q in pair["questions"])
    assert pair["standard_questions"] == ["退款退到银行卡要多久", "退款退到余额要多久"]
    assert json.dumps(result.to_dict(), ensure_ascii=False)  # the API returns it as is


def test_a_small_kb_keeps_the_default_scale_and_says_why():
    index = KBIndex(ENTRIES[:3], background_rebuild=False)
    result = index.calibrate()
    assert not result.calibrated and "too few questions" in result.reason
    # The default scale is the identity below the answer point.
    assert Calibration().rescale(0.6, 0.0) == 0.6
    assert index.calibration is result


def test_rescale_answers_only_with_the_margin_and_keeps_the_order():
    cal = Calibration(answer_score=0.9, answer_margin=0.2, suggest_score=0.3, calibrated=True)
    assert cal.rescale(0.95, 0.25) >= ANSWER_POINT
    assert cal.rescale(0.95, 0.1) < ANSWER_POINT  # sure, but too close to the next entry
    assert 0.5 <= cal.rescale(0.5, 0.0) < ANSWER_POINT
    assert cal.rescale(0.2, 0.0) < 0.5
    raws = [0.0, 0.1, 0.29, 0.3, 0.5, 0.89, 0.95]
    scaled = [cal.rescale(r, -0.01) for r in raws]
    assert scaled == sorted(scaled)


def test_background_calibration_answers_meanwhile_and_lands():
    index = KBIndex(ENTRIES, background_rebuild=False)
    thread = index.calibrate_in_background(0.95)
    assert index.query("怎么开发票", k=1)[0].entry_id == "invoice"  # answers meanwhile
    thread.join(60)
    assert index.wait_calibrated(1) and not index.calibrating
    assert index.calibration.in_scope > 0
    assert index.calibration_progress[0] > 0  # it told how far it was


def test_synonyms_make_a_paraphrase_match_its_entry():
    entries = [KBEntry("refund", ["怎么申请退款"], "a"), KBEntry("logistics", ["物流到哪了"], "b"),
               KBEntry("coupon", ["优惠券怎么用"], "c")]
    plain = KBIndex(entries)
    lexicon = Lexicon(synonyms=[["退款", "退钱"], ["物流", "快递"]])
    taught = KBIndex(entries, lexicon=lexicon)
    assert lexicon.fold("我要退钱快递到哪") == "我要退款物流到哪"
    for question, expected in (("怎么申请退钱", "refund"), ("快递到哪了", "logistics")):
        before = plain.raw_query(question, k=3)
        after = taught.raw_query(question, k=3)
        assert after[0].entry_id == expected
        mine = {c.entry_id: c.score for c in before}
        assert after[0].score > mine.get(expected, 0.0)


def test_user_dictionary_keeps_product_words_whole():
    plain = Lexicon()
    taught = Lexicon(words=["闪电退款"])
    assert "闪电退款" not in plain.segment("闪电退款怎么开通")
    assert taught.segment("闪电退款怎么开通")[0] == "闪电退款"
    # The team's words do not leak into jieba's process-wide dictionary.
    assert "闪电退款" not in Lexicon().segment("闪电退款怎么开通")
    entries = [KBEntry("flash", ["闪电退款怎么开通"], "a"), KBEntry("refund", ["退款怎么申请"], "b")]
    index = KBIndex(entries, lexicon=taught)
    assert index.raw_query("开通闪电退款", k=1)[0].entry_id == "flash"
    assert "闪电退款" in index._state.words_of("闪电退款怎么开通").split()


def test_index_with_a_lexicon_survives_pickling():
    import pickle

    index = KBIndex(ENTRIES, lexicon=Lexicon([["退款", "退钱"]], ["闪电退款"]))
    again = pickle.loads(pickle.dumps(index))
    assert [c.entry_id for c in again.query("发票怎么开", k=2)] == \
        [c.entry_id for c in index.query("发票怎么开", k=2)]
    again.upsert(KBEntry("new", ["新问题在这里"], "x"))
    assert again.query("新问题在这里", k=1)[0].entry_id == "new"


def test_eval_prints_null_ratios_and_writes_details(tmp_path):
    import csv

    from meiqia.bot.evaluate import evaluate
    from meiqia.bot.evaluate import evaluate_details
    from meiqia.bot.evaluate import format_report
    from meiqia.bot.kbfile import write_yaml

    kb = tmp_path / "kb.yaml"
    write_yaml(ENTRIES, kb)
    cases = tmp_path / "cases.csv"
    cases.write_text("query,expected_id\n发票怎么申请,invoice\n密码忘了怎么办,password\n",
                     encoding="utf-8")
    details = tmp_path / "details.csv"
    result = evaluate_details(kb, cases, details_path=details)
    # All in scope: out-of-scope ratios have no denominator: null, never 0.0.
    assert result["oos_recall"] is None
    assert result["top1_accuracy"] == 1.0
    assert set(result["thresholds"]) >= {"answer", "suggest", "calibrated", "raw_answer_score",
                                          "raw_answer_margin", "raw_suggest_score"}
    text = format_report(result)
    assert "out-of-scope recall null" in text and "answer precision" in text
    assert "coverage" in text and "suggest precision" in text and "calibration" in text
    plain = json.loads(json.dumps(evaluate(kb, cases)))
    assert plain["oos_recall"] is None and plain["oos_precision"] in (None, 0.0)
    with details.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["query"] for r in rows] == ["发票怎么申请", "密码忘了怎么办"]
    assert rows[0]["expected_id"] == "invoice" and rows[0]["top1_id"] == "invoice"
    assert rows[0]["decision"] in {"answer", "suggest", "unrecognised"}
    assert float(rows[0]["top1_score"]) >= float(rows[0]["top2_score"])


def test_questions_from_many_threads_during_calibration_see_one_scale_each(monkeypatch):
    """A calibration landing mid-query must not mix scales within one answer:
    every candidate list is rescaled with the one calibration read at its start."""
    import threading

    import meiqia.bot.calibrate as cal

    monkeypatch.setattr(cal, "MIN_IN_SCOPE", 5)
    monkeypatch.setattr(cal, "MIN_OUT_OF_SCOPE", 0)
    monkeypatch.setattr(cal, "HOLD_EVERY", 2)
    index = KBIndex(ENTRIES, background_rebuild=False)
    before = index.query("发票怎么开", k=3)
    stop = threading.Event()
    failures: list[str] = []
    seen: list[list[float]] = []

    def ask() -> None:
        while not stop.is_set():
            try:
                found = index.query("发票怎么开", k=3)
                assert found and found[0].entry_id == "invoice"
                seen.append([c.score for c in found])
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(repr(exc))
                return

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(3):  # several calibrations land while the questions go on
        index.calibrate_in_background(0.95).join(60)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert not failures, failures[:3]
    after = index.query("发票怎么开", k=3)
    assert index.calibration.calibrated
    allowed = {tuple(round(c.score, 9) for c in before), tuple(round(c.score, 9) for c in after)}
    assert seen and {tuple(round(s, 9) for s in scores) for scores in seen} <= allowed


def test_oos_curve_reads_in_scope_accuracy_at_each_recall():
    from meiqia.bot.evaluate import oos_curve

    # Ten in-scope cases (eight with the right top candidate), four out of scope.
    tops = [(True, True, s) for s in (0.9, 0.8, 0.7, 0.6, 0.55, 0.45, 0.35, 0.3)]
    tops += [(True, False, 0.65), (True, False, 0.2)]
    tops += [(False, False, s) for s in (0.1, 0.25, 0.4, 0.5)]
    curve = {p["oos_recall"]: p for p in oos_curve(tops)}
    # Four out-of-scope cases reach only these recalls: each is listed once.
    assert [p["oos_recall"] for p in oos_curve(tops)] == [0.5, 0.75, 1.0]
    # Recall 0.5: below 0.25 + ε, all eight right ones stay; 0.75: below 0.4 + ε, two drop.
    assert curve[0.5]["in_scope_accuracy"] == 0.8
    assert curve[0.75]["in_scope_accuracy"] == 0.6
    # Every out-of-scope question caught: only those above 0.5 stay (five right).
    assert curve[1.0]["in_scope_accuracy"] == 0.5
    for point in curve.values():  # the threshold reproduces the point, as decide() cuts
        below = [s for i, _, s in tops if not i and s < point["suggest_threshold"]]
        assert len(below) / 4 == point["oos_recall"]
    assert oos_curve([(True, True, 0.9)]) == [] and oos_curve([(False, False, 0.1)]) == []


def test_eval_report_prints_the_curve_and_cpu_time(tmp_path):
    from meiqia.bot.evaluate import evaluate_details
    from meiqia.bot.evaluate import format_report
    from meiqia.bot.kbfile import write_yaml

    kb = tmp_path / "kb.yaml"
    write_yaml(ENTRIES, kb)
    cases = tmp_path / "cases.csv"
    cases.write_text("query,expected_id\n" + "".join(
        f"{e.questions[0]},{e.id}\n" for e in ENTRIES[:5]) + "write me a poem,\nbook a flight,\n",
        encoding="utf-8")
    result = evaluate_details(kb, cases, calibrate=False)
    assert result["cpu_p50_ms"] > 0 and result["cpu_p99_ms"] >= result["cpu_p50_ms"]
    # Two out-of-scope cases: the cuts reach recall 0.5 and 1.0 only, each listed once.
    assert [p["oos_recall"] for p in result["oos_curve"]] == [0.5, 1.0]
    text = format_report(result)
    assert "CPU p50 / p99" in text and "in scope vs OOS" in text


def test_unknown_words_lower_only_the_cut_to_unrecognised():
    cal = Calibration(answer_score=0.8, answer_margin=0.0, suggest_score=0.3, calibrated=True,
                      oov_weight=2.0)
    # The same for every candidate of a question: the order of candidates stays.
    scores = [0.05, 0.2, 0.4, 0.6, 0.79]
    adjusted = [cal.adjusted(s, 0.5) for s in scores]
    assert adjusted == sorted(adjusted) and all(a < s for a, s in zip(adjusted, scores,
                                                                        strict=True))
    assert cal.adjusted(0.4, 0.0) == 0.4 and Calibration().adjusted(0.4, 1.0) == 0.4
    # A sure answer stays an answer whatever words it has; below the answer
    # point, a question of unknown words drops from "did you mean" to unrecognised.
    assert cal.rescale(0.9, 0.3, oov=1.0) == cal.rescale(0.9, 0.3, oov=0.0) >= ANSWER_POINT
    assert cal.rescale(0.35, 0.1, oov=0.0) >= 0.5 > cal.rescale(0.35, 0.1, oov=1.0)


def test_the_unknown_word_weight_is_learned_from_the_self_test():
    import random

    from meiqia.bot.calibrate import MAX_OOV_WEIGHT
    from meiqia.bot.calibrate import _Asked
    from meiqia.bot.calibrate import fit_oov_weight

    rng = random.Random(1)

    def asked(expected, raw, oov):
        return _Asked(expected, "q", [(expected or "x", raw), ("y", raw / 2)], oov)

    # Out-of-scope questions score a little lower and are made of unknown words.
    telling = ([asked("a", rng.uniform(0.3, 0.9), rng.uniform(0.0, 0.2)) for _ in range(300)]
               + [asked("", rng.uniform(0.1, 0.6), rng.uniform(0.3, 0.9)) for _ in range(60)])
    weight = fit_oov_weight(telling)
    assert 0.5 < weight <= MAX_OOV_WEIGHT
    # The same unknown share in and out of scope: it says nothing, weighs (almost) nothing.
    mute = ([asked("a", rng.uniform(0.3, 0.9), rng.uniform(0.0, 0.5)) for _ in range(300)]
            + [asked("", rng.uniform(0.1, 0.6), rng.uniform(0.0, 0.5)) for _ in range(60)])
    assert fit_oov_weight(mute) < weight / 3
    # No out-of-scope questions, or no unknown words at all: nothing to learn.
    assert fit_oov_weight([a for a in telling if a.expected]) == 0.0
    assert fit_oov_weight([asked(a.expected, a.raw, 0.0) for a in telling]) == 0.0
    # The suggest point is chosen on the adjusted scores: more of them caught.
    from meiqia.bot.calibrate import choose

    plain, learned = choose(telling, 0.95), choose(telling, 0.95, weight)
    assert learned.oov_weight == weight and plain.oov_weight == 0.0
    assert learned.oos_recall >= plain.oos_recall


def test_a_question_of_words_the_kb_lacks_has_a_high_unknown_share():
    index = build(ENTRIES)
    known = index.raw_query("退款多久到账", k=1)[0].features["oov"]
    strange = index.raw_query("天气预报明天下雨吗", k=1)
    assert known < 0.2
    assert not strange or strange[0].features["oov"] > 0.8
