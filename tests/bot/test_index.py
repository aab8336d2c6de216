"""The index answers what it knows, suggests when unsure, rejects what it doesn't."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from meiqia.bot import index as bot_index
from meiqia.bot.evaluate import evaluate
from meiqia.bot.index import KBIndex
from meiqia.bot.index import decide
from meiqia.bot.kbfile import KBEntry
from meiqia.bot.kbfile import write_yaml
from tests.bot.kbdata import EN
from tests.bot.kbdata import ZH


@pytest.fixture(scope="module")
def zh_index():
    return KBIndex(ZH)


@pytest.fixture(scope="module")
def en_index():
    return KBIndex(EN)


@pytest.mark.parametrize(
    ("question", "entry"),
    [
        ("退貨運費誰出？", "return-fee"),  # traditional characters
        ("请问退款几天到账呢", "refund-time"),  # filler and particle
        ("能开专用发票吗", "invoice"),
        ("ＶＩＰ有什么好处", "vip"),  # full-width letters
        ("我的快递到哪了", "ship-track"),
        ("密码忘了怎么办", "password"),
        ("您好，支持支付宝吗？", "pay"),
    ],
)
def test_chinese_questions_find_their_entry(zh_index, question, entry):
    candidates = zh_index.query(question, k=3)
    assert candidates[0].entry_id == entry
    assert zh_index.decide(candidates).kind in {"answer", "suggest"}


@pytest.mark.parametrize(
    ("question", "entry"),
    [("how long until I get my money back", "refund-time"),
     ("Could you tell me if you take paypal?", "pay-methods"),
     ("I FORGOT MY PASSWORD!!", "password")],
)
def test_english_questions_find_their_entry(en_index, question, entry):
    assert en_index.query(question, k=3)[0].entry_id == entry


@pytest.mark.parametrize("question", ["你们卖汽车吗", "帮我订一张机票", "帮我写一首诗",
                                      "明天北京天气怎么样"])
def test_out_of_scope_chinese_questions_are_unrecognised(zh_index, question):
    assert zh_index.decide(zh_index.query(question, k=3)).kind == "unrecognised"


@pytest.mark.parametrize("question", ["what is the capital of France",
                                      "play some jazz music", "tell me a joke"])
def test_out_of_scope_english_questions_are_not_answered(en_index, question):
    # A 5-entry KB has little evidence: at worst a "did you mean", never an answer.
    assert en_index.decide(en_index.query(question, k=3)).kind != "answer"


def test_exact_standard_question_is_answered_with_a_high_score(zh_index):
    candidates = zh_index.query("怎么开发票？", k=3)
    assert zh_index.decide(candidates).kind == "answer"
    assert candidates[0].matched_question == "怎么开发票"
    assert 0.9 < candidates[0].score <= 1.0


def test_scores_are_in_unit_range_and_sorted(zh_index):
    candidates = zh_index.query("退款", k=5)
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len({c.entry_id for c in candidates}) == len(candidates)  # one per entry


def test_decide_kinds():
    def cand(score):
        return bot_index.Candidate("x", "q", "a", score, "q")

    assert decide([cand(0.95)], 0.7, 0.5).kind == "answer"
    suggest = decide([cand(0.6), cand(0.55), cand(0.2)], 0.7, 0.5)
    assert suggest.kind == "suggest" and len(suggest.candidates) == 2
    assert decide([cand(0.3)], 0.7, 0.5).kind == "unrecognised"
    assert decide([], 0.7, 0.5).kind == "unrecognised"


def test_upsert_and_remove_show_at_once():
    index = KBIndex(ZH[:3])
    assert index.query("会员生日礼怎么领", k=1)[0].entry_id != "birthday"
    index.upsert(KBEntry("birthday", ["会员生日礼怎么领", "生日有什么福利"], "生日当月发券"))
    assert index.query("会员生日礼怎么领", k=1)[0].entry_id == "birthday"
    index.upsert(KBEntry("birthday", ["生日礼物在哪领取"], "生日当月发券"))  # replaced
    assert index.query("生日礼物在哪领取", k=1)[0].matched_question == "生日礼物在哪领取"
    index.remove("birthday")
    assert all(c.entry_id != "birthday" for c in index.query("会员生日礼怎么领", k=3))
    index.remove("no-such-entry")
    assert len(index) == 3


def test_large_index_patches_edits_then_rebuilds_in_the_background(monkeypatch):
    monkeypatch.setattr(bot_index, "INCREMENTAL_ABOVE_VARIANTS", 10)
    index = KBIndex(ZH)
    before = index._state
    index.upsert(KBEntry("birthday", ["会员生日礼怎么领", "生日有什么福利", "生日当天有优惠吗"],
                         "生日当月发券"))
    patched = index._state
    assert patched is not before and patched.features is before.features  # not refitted
    assert index.query("生日有什么福利", k=1)[0].entry_id == "birthday"
    index.remove("pay")
    assert all(c.entry_id != "pay" for c in index.query("可以用支付宝吗", k=5))
    assert index.wait_rebuilt(timeout=30)
    assert index._state.features is not before.features  # refitted in the background
    assert index.query("生日有什么福利", k=1)[0].entry_id == "birthday"
    assert index.query("怎么查物流", k=1)[0].entry_id == "ship-track"
    assert len(index) == len(ZH)


def test_edits_of_a_large_index_without_classifier_share_its_matrix(monkeypatch):
    """Above the patch size, an index without the entry classifier (the large
    ones) takes an edit without copying its matrix: removed questions are
    marked dead, new ones go to a small matrix of their own (memory: issue 20).
    Answers are those of a fresh build of the same entries."""
    monkeypatch.setattr(bot_index, "INCREMENTAL_ABOVE_VARIANTS", 10)
    index = KBIndex(ZH, use_classifier=False, background_rebuild=False)
    before = index._state
    index.upsert(KBEntry("birthday", ["会员生日礼怎么领", "生日有什么福利"], "生日当月发券"))
    index.upsert(KBEntry("refund-time", ["退款多久到账", "钱什么时候退回来"], "1-3 个工作日"))
    index.remove("pay")
    state = index._state
    assert state.by_feature is before.by_feature  # shared, not copied
    assert state.extra is not None and state.extra.shape[1] == 4
    assert int(state.dead.sum()) == len(next(e for e in ZH if e.id == "pay").questions) + len(
        next(e for e in ZH if e.id == "refund-time").questions)
    assert index.variant_count == sum(len(e.questions) for e in index._entries.values())
    assert index.query("生日有什么福利", k=1)[0].entry_id == "birthday"
    assert index.query("钱什么时候退回来", k=1)[0].matched_question == "钱什么时候退回来"
    found = index.query("可以用支付宝吗", k=5)
    assert found and all(c.entry_id != "pay" for c in found)
    fresh = KBIndex(list(index._entries.values()), use_classifier=False)
    for question in ("怎么查物流", "生日有什么福利", "发票怎么开", "忘记密码"):
        assert (index.query(question, k=1)[0].entry_id
                == fresh.query(question, k=1)[0].entry_id), question
    # Everything removed but one entry: the dead questions never come back.
    for entry in ZH:
        if entry.id != "ship-track":
            index.remove(entry.id)
    index.remove("birthday")
    assert {c.entry_id for c in index.query("退款多久到账", k=5)} <= {"ship-track"}
    index.rebuild()
    assert index._state.extra is None and index._state.dead is None
    assert index.query("怎么查物流", k=1)[0].entry_id == "ship-track"


def test_queries_while_another_thread_edits_never_fail():
    index = KBIndex(ZH[:4])
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask():
        while not stop.is_set():
            try:
                found = index.query("退款多久到账", k=3)
                assert found and found[0].entry_id == "refund-time"
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                errors.append(exc)
                return

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for entry in ZH[4:]:
        index.upsert(entry)
    for entry in ZH[4:7]:
        index.remove(entry.id)
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and len(index) == len(ZH) - 3


def test_empty_index_and_empty_question():
    assert KBIndex([]).query("退款") == []
    index = KBIndex([KBEntry("a", ["退款"], "x")])
    assert index.query("？？？") == []
    assert index.decide([]).kind == "unrecognised"
    index.upsert(KBEntry("b", ["发票"], "y"))  # from one entry to two: still fine
    assert index.query("发票", k=1)[0].entry_id == "b"


def test_disabled_entries_are_not_answered():
    index = KBIndex([*ZH[:3], KBEntry("off", ["怎么开发票"], "x", enabled=False)])
    assert all(c.entry_id != "off" for c in index.query("怎么开发票", k=5))


def test_evaluate_reports_the_design_metrics(tmp_path):
    kb = tmp_path / "kb.yaml"
    write_yaml(ZH, kb)
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "query,expected_id\n退货运费谁出,return-fee\n怎么开专票,invoice\n"
        "帮我写一首诗,\n帮我订一张机票,\n",
        encoding="utf-8",
    )
    result = evaluate(kb, cases)
    assert {"n", "in_scope_accuracy", "oos_recall", "oos_precision", "suggest_rate",
            "p50_ms", "p99_ms", "build_s", "top1_accuracy", "answer_precision", "coverage",
            "suggest_precision", "thresholds", "cpu_p50_ms", "cpu_p99_ms",
            "oos_curve"} == set(result)
    assert result["n"] == 4
    assert result["in_scope_accuracy"] == 1.0
    assert result["oos_recall"] == 1.0 and result["oos_precision"] == 1.0
    from meiqia.bot.evaluate import format_report

    assert "in-scope accuracy" in format_report(result)


def test_features_are_sklearns_tfidf_blocks(monkeypatch):
    """The hand-counted TF-IDF (fast to build) is exactly sklearn's, block by block.

    The calibrated weights were fitted on sklearn's numbers, so the build may get
    faster but must not change a single feature.
    """
    import numpy as np
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    from meiqia.bot.normalize import normalize

    texts = [normalize(q) for e in ZH + EN for q in e.questions]
    texts += [normalize("VIP会员 paypal 退款 refund 退款"), normalize("iphone 15 pro 保修")]
    # Expanded a few words at a time, as a large build is (the result is the same).
    monkeypatch.setattr(bot_index, "GATHER_CHUNK", 7)
    features = bot_index._Features()
    ours = features.fit_transform(texts)

    def block(analyzer, column, **kwargs):
        vectorizer = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, lowercase=False,
                                     dtype=np.float32, **kwargs)
        return vectorizer.fit_transform(column)

    cjk = [bot_index.cjk_part(t) for t in texts]
    latin = [bot_index.latin_part(t) for t in texts]
    theirs = sparse.hstack([
        block(bot_index._cjk_grams, cjk),
        block(bot_index._per_unit(bot_index._zh_word_grams(bot_index.EMPTY)), cjk),
        block(bot_index._latin_grams, latin),
        block("word", latin, ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b"),
    ], format="csr")
    norms = np.sqrt(np.asarray(theirs.multiply(theirs).sum(axis=1)).ravel())
    theirs = sparse.diags(1 / np.where(norms == 0, 1, norms)) @ theirs
    assert ours.shape == theirs.shape
    assert abs(ours - theirs).max() < 1e-6
    # New texts in the fitted columns, and one query by hand, agree with the matrix.
    again = features.transform(texts[:5] + ["zz 未见过的字"])
    assert abs(again[:5] - ours[:5]).max() < 1e-6
    cols, vals = features.transform_one(texts[3])
    row = ours[3].toarray().ravel()
    assert np.allclose(row[cols], vals, atol=1e-6) and np.isclose(row.sum(), vals.sum(), atol=1e-5)


def test_apply_takes_several_changes_as_one_edit_and_builds_report_progress():
    heard: list[tuple[float, str]] = []
    index = KBIndex(ZH, progress=lambda fraction, message: heard.append((fraction, message)))
    fractions = [f for f, _ in heard]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert heard[-1][1] == f"{len(ZH)} entries, {index.variant_count} questions indexed"
    assert any("classifier" in message for _, message in heard)
    index.apply({"pay": None, "vip": None,
                 "birthday": KBEntry("birthday", ["生日有什么福利"], "生日当月发券")})
    assert len(index) == len(ZH) - 1
    assert index.query("生日有什么福利", k=1)[0].entry_id == "birthday"
    assert all(c.entry_id not in {"pay", "vip"} for c in index.query("可以用支付宝吗", k=5))


def test_the_chunked_feature_major_build_is_the_transpose_of_the_matrix(monkeypatch):
    """``fit_by_feature`` counts and fills a few texts at a time (memory: issue
    20); the result must be exactly ``fit_transform``'s matrix, transposed,
    with each row's word-block length, however the texts are chunked."""
    import numpy as np

    from meiqia.bot.normalize import normalize

    texts = [normalize(q) for e in ZH + EN for q in e.questions]
    texts += [normalize("VIP会员 paypal 退款 refund 退款"), normalize("iphone 15 pro 保修"),
              normalize("只有中文的问题"), normalize("english only question")]
    whole = bot_index._Features().fit_transform(texts)
    for chunk in (1, 3, 7, 10_000):
        monkeypatch.setattr(bot_index, "BUILD_CHUNK", chunk)
        features = bot_index._Features()
        by_feature, word_norm2 = features.fit_by_feature(texts)
        assert by_feature.shape == (whole.shape[1], whole.shape[0])
        assert abs(by_feature - whole.T.tocsr()).max() < 1e-6
        assert np.allclose(word_norm2, features.word_norm2(whole), atol=1e-6)
        # Each feature row lists its texts in order (the query relies on CSR rows).
        for row in range(0, by_feature.shape[0], 11):
            cols = by_feature.indices[by_feature.indptr[row]:by_feature.indptr[row + 1]]
            assert (np.diff(cols) > 0).all()


def test_patching_columns_in_place_equals_scipy_selection_and_stack(monkeypatch):
    """An edit of a large index drops the removed questions' columns and adds the
    new ones straight into new arrays (memory: issue 20); the result must be
    scipy's column selection and hstack, whatever the step."""
    import numpy as np
    from scipy import sparse

    from meiqia.bot.normalize import normalize

    texts = [normalize(q) for e in ZH + EN for q in e.questions]
    features = bot_index._Features()
    by_feature, _ = features.fit_by_feature(texts)
    keep = np.ones(len(texts), dtype=bool)
    keep[[0, 3, 4, len(texts) - 1]] = False
    added = features.transform([normalize("退款多久到账 refund"), normalize("新的问题怎么开发票")])
    expected = sparse.hstack([by_feature[:, np.flatnonzero(keep)], added.T], format="csr")
    for step in (1, 5, 4096):
        monkeypatch.setattr(bot_index, "PATCH_STEP", step)
        ours = bot_index._patch_columns(by_feature, keep, added.T.tocsr())
        assert ours.shape == expected.shape and ours.dtype == np.float32
        assert abs(ours - expected).max() == 0
        assert all((np.diff(ours.indices[ours.indptr[r]:ours.indptr[r + 1]]) > 0).all()
                   for r in range(ours.shape[0]))
        removed_only = bot_index._patch_columns(by_feature, keep, None)
        assert abs(removed_only - by_feature[:, np.flatnonzero(keep)]).max() == 0


def test_an_exact_question_is_answered_where_the_calibration_only_suggests():
    """A KB whose calibration could not reach its target only suggests (its answer
    point above every raw score). A question typed exactly as one entry has it is
    still answered: it is the team's own question. Found from outside: on such a KB
    even "退款多久到账", word for word, was only offered as "did you mean". A question
    two entries both hold is no one entry's: it stays a suggestion."""
    from meiqia.bot.calibrate import Calibration

    entries = [*ZH, KBEntry("refund-where", ["退款到哪个账户", "钱什么时候退回来"],
                            "原路退回到付款账户。", "售后")]
    index = KBIndex(entries)
    index.calibration = Calibration(answer_score=1.0, calibrated=True, reason="",
                                    target_reached=False)
    exact = index.query("退款多久到账？", k=3)
    assert exact[0].entry_id == "refund-time"
    assert index.decide(exact).kind == "answer"
    # A paraphrase is only suggested on this KB, as its calibration says.
    assert index.decide(index.query("退款大概要等几天才能到", k=3)).kind != "answer"
    # The same words in two entries: nobody's exact question.
    shared = index.query("钱什么时候退回来", k=3)
    assert index.decide(shared).kind != "answer"


def test_a_pasted_page_is_read_up_to_its_first_characters(en_index, zh_index):
    """A visitor who pastes a page (an error log, an order list) is answered
    from the first ``QUESTION_CHARS`` characters, as if he had sent only those:
    the rest cost 20 ms of CPU and no FAQ question is that long."""
    cut = bot_index.QUESTION_CHARS
    for index, head in ((en_index, "How do I reset my password? I tried the link "),
                        (zh_index, "怎么退货？我上周在你们店里买的衣服不合适，")):
        page = head + "".join(f"订单 {n} 状态 pending log line {n}; " for n in range(400))
        assert len(page) > 10 * cut
        asked, head_only = index.query(page), index.query(page[:cut])
        assert asked and [(c.entry_id, c.score) for c in asked] == [
            (c.entry_id, c.score) for c in head_only]


def test_a_long_question_keeps_only_its_heaviest_n_grams(en_index):
    """Retrieval reads at most ``QUERY_GRAMS`` of a question's n-gram columns,
    those of the highest weight, renormalised; a short question keeps all."""
    features = en_index._state.features
    long = " ".join(en_index._state.texts)  # every n-gram the index knows
    cols, vals = features.transform_one(long)
    assert cols.size > bot_index.QUERY_GRAMS
    top_cols, top_vals = features.transform_one(long, bot_index.QUERY_GRAMS)
    assert top_cols.size == bot_index.QUERY_GRAMS
    heaviest = set(cols[np.argsort(-vals)[:bot_index.QUERY_GRAMS]].tolist())
    assert set(top_cols.tolist()) == heaviest
    assert abs(float(np.linalg.norm(top_vals)) - 1.0) < 1e-5
    short_cols, short_vals = features.transform_one("reset my password")
    again_cols, again_vals = features.transform_one("reset my password", bot_index.QUERY_GRAMS)
    assert short_cols.tolist() == again_cols.tolist()
    assert np.allclose(short_vals, again_vals)


def _transform_one_by_gram(features, text: str, most: int = 0):
    """``transform_one`` as written before the per-word column cache: every
    n-gram looked up in turn. The query's features must equal it bit for bit
    (an answer must not move because the featurisation got faster)."""
    import math

    columns = (bot_index.cjk_part(text), bot_index.latin_part(text))
    weights: dict[int, float] = {}
    for block, offset, which in features.blocks:
        if not columns[which]:
            continue
        counts: dict[int, int] = {}
        for gram in block.analyze(columns[which]):
            col = block.vocabulary.get(gram)
            if col is not None:
                counts[col] = counts.get(col, 0) + 1
        if not counts:
            continue
        part = {c: (1.0 + math.log(n)) * float(block.idf[c]) for c, n in counts.items()}
        norm = math.sqrt(sum(v * v for v in part.values())) or 1.0
        for c, v in part.items():
            weights[offset + c] = v / norm
    cols = np.fromiter(weights.keys(), dtype=np.int64, count=len(weights))
    vals = np.fromiter(weights.values(), dtype=np.float32, count=len(weights))
    if most and cols.size > most:
        keep = np.argpartition(-vals, most - 1)[:most]
        cols, vals = cols[keep], vals[keep]
    return cols, vals / np.float32(np.linalg.norm(vals) or 1.0)


def test_query_features_are_those_of_counting_every_n_gram(en_index, zh_index):
    """The per-word column cache and the direct sparse product change no bit of
    a question's n-gram row or of its cosines, for long questions (repeated
    words: the cache is hit), Chinese, mixed text, and after a refit of the
    same features (a new vocabulary: no column of the old one is kept)."""
    for index in (en_index, zh_index):
        state = index._state
        long = " ".join(state.texts[:40])
        for text in (long, long + " " + long, "reset my password 密码 忘了 怎么办 password",
                     state.texts[3], "zzz qqq"):
            for most in (0, bot_index.QUERY_GRAMS):
                ours = state.features.transform_one(text, most)
                ref = _transform_one_by_gram(state.features, text, most)
                assert ours[0].tolist() == ref[0].tolist()
                assert ours[1].tobytes() == ref[1].tobytes()
            cols, vals = ours
            if not cols.size:
                continue
            pair = np.stack([vals, vals * state.features.is_word_col[cols]], axis=1)
            fast = bot_index._rows_t_times(state.by_feature, cols, pair)
            assert fast.dtype == np.float32
            assert fast.tobytes() == (state.by_feature[cols].T @ pair).tobytes()
    features = bot_index._Features()
    question = "how do i reset my password please reset it"
    features.fit_transform(["reset my password", "open an account"])
    features.transform_one(question)  # fills the cache with this vocabulary's columns
    features.fit_transform(["my password was stolen", "close my account", "reset the app"])
    ours = features.transform_one(question)
    ref = _transform_one_by_gram(features, question)
    assert ours[0].tolist() == ref[0].tolist() and ours[1].tobytes() == ref[1].tobytes()
