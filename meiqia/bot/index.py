"""The knowledge-base index: TF-IDF retrieval, a linear classifier, rapidfuzz.

Pipeline for one question (DESIGN §6):

1. ``normalize`` the text (Chinese and English alike).
2. Sparse TF-IDF features: character 1-3-grams of the CJK runs, character
   2-4-grams (within words) and word 1-2-grams of the Latin runs. Character
   n-grams need no word segmentation, so Chinese works without a dictionary.
3. Candidates: cosine similarity against every question variant (one sparse
   product), best variant per entry.
4. Where the KB has enough variants per entry, a linear classifier over entries
   (``LinearSVC`` on the same features) adds its decision value.
5. rapidfuzz re-scores the few best entries against their best variant and
   catches near-exact hits.
6. The features of each candidate are combined by a logistic model into ONE
   calibrated score in [0, 1]: the estimated probability that this entry is the
   right answer. A small margin to the second-best entry lowers the score of the
   first. The weights were fitted on data with real out-of-scope questions
   (docs/bot.md says how), so a low score means "not in the knowledge base".

The index is immutable once built; ``upsert``/``remove`` build a new state and
swap one reference, so queries from many threads never see half an update.
"""

from __future__ import annotations

import atexit
import itertools
import math
import re
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from functools import lru_cache
from typing import Any

import numpy as np
from rapidfuzz import fuzz
from scipy import sparse
from sklearn.svm import LinearSVC

from meiqia.bot import semantic
from meiqia.bot.calibrate import ANSWER_POINT
from meiqia.bot.calibrate import DEFAULT as DEFAULT_CALIBRATION
from meiqia.bot.calibrate import DEFAULT_BY_MODEL
from meiqia.bot.calibrate import DEFAULT_TARGET
from meiqia.bot.calibrate import MODELS
from meiqia.bot.calibrate import SUGGEST_POINT
from meiqia.bot.calibrate import Calibration
from meiqia.bot.calibrate import calibrate as calibrate_kb
from meiqia.bot.kbfile import KBEntry
from meiqia.bot.lexicon import EMPTY
from meiqia.bot.lexicon import Lexicon
from meiqia.bot.normalize import MAX_QUESTION_CHARS
from meiqia.bot.normalize import normalize
from meiqia.bot.normalize import normalize_asked

try:  # SciPy's own kernels, for the query's retrieval product (``_rows_t_times``)
    from scipy.sparse import _sparsetools
except ImportError:  # pragma: no cover - another SciPy: the public product serves
    _sparsetools = None

#: At or above: the bot answers (direct answers right 97 % of the time on the
#: CLINC150 tuning set). Fitted by benchmarks/bot_tune.py (docs/bot.md).
DEFAULT_ANSWER_THRESHOLD = 0.7
#: Below: unrecognised (out-of-scope recall 0.70 on the tuning set); between
#: this and the answer threshold: "did you mean" suggestions.
DEFAULT_SUGGEST_THRESHOLD = 0.5
#: Train the classifier only when entries have this many variants on average.
CLASSIFIER_MIN_VARIANTS = 3.0
#: ... and at most this many entries and variants: training time grows with
#: entries x variants (100,000 variants of 1,000 entries took 10 minutes), and
#: the weights take features x entries floats.
CLASSIFIER_MAX_ENTRIES = 1000
CLASSIFIER_MAX_VARIANTS = 30_000
CLASSIFIER_MAX_WEIGHTS = 40_000_000
#: Regularisation of the entry classifier (LinearSVC's C).
SVM_C = 2.0
#: Up to this many variants an edit rebuilds the whole index (a 60-entry KB takes
#: well under a second); above, the edit is patched in and a full rebuild runs
#: in a background thread to refresh the vocabulary and the other entries.
INCREMENTAL_ABOVE_VARIANTS = 2000
#: Variants looked at per query before grouping by entry.
TOP_VARIANTS = 50
#: Entries re-scored with rapidfuzz.
RESCORE = 8
#: Characters of a question the index reads (the first ones): the bot's one
#: limit (``normalize.MAX_QUESTION_CHARS``), also for callers that ask the index
#: directly (calibration, evaluation, plugins' tests).
QUESTION_CHARS = MAX_QUESTION_CHARS
#: N-gram columns of a question used for retrieval and the classifier: those
#: of the highest weight. A long question's common n-grams (" th", "the ") each
#: sum a long row of the feature-major matrix for little weight; 200 bounds
#: that product (about 1 ms of a long BANKING77 question) and touches only
#: questions with more (BANKING77's p90 is 241, CLINC150's and zh_faq's are
#: far below). On the development sets: CLINC150 and zh_faq unchanged,
#: BANKING77's training split in-scope 0.906 -> 0.914, coverage 0.720 -> 0.719.
QUERY_GRAMS = 200

#: Logistic weights over the candidate features (``FEATURES``), fitted by
#: benchmarks/bot_tune.py on development data only (docs/bot.md): with the
#: entry classifier on CLINC150 training data with real out-of-scope questions;
#: without it, for questions with Chinese characters on the zh_faq development
#: cases (LCQMC dev), for the others on CLINC150 training data. Features not
#: named weigh 0. The absolute scale no longer matters much: every index
#: calibrates where its scores answer (meiqia.bot.calibrate).
WEIGHTS_CLF = {"bias": -2.411, "cos": -0.161, "clf": 2.183, "fuzz": -1.526, "tset": 0.941,
               "exact": 0.081, "c_chr": 3.436, "c_wrd": -3.974, "cov_q": 2.244,
               "cov_c": 3.662, "len_r": 0.123, "jac": -1.249, "part": -0.124,
               "q_miss": 0.022, "c_miss": -0.891, "m_cos": -0.714, "m_clf": 2.273,
               "m_fuzz": 3.441, "m_tset": -0.787, "m_exact": 0.481, "m_c_chr": -1.286,
               "m_c_wrd": 0.628, "m_cov_q": 0.259, "m_cov_c": -1.644, "m_len_r": 1.537,
               "m_jac": 0.484, "m_part": 1.454, "m_q_miss": -0.773, "m_c_miss": 1.333}
WEIGHTS_PLAIN = {"bias": -4.06, "cos": -0.09, "fuzz": -1.966, "tset": 1.532, "exact": 0.193,
                 "c_chr": 3.538, "c_wrd": -3.903, "cov_q": 2.592, "cov_c": 3.397, "len_r":
                 1.241, "jac": -0.943, "part": 0.084, "q_miss": 0.927, "c_miss": -1.934,
                 "m_cos": 3.388, "m_fuzz": 4.609, "m_tset": 2.462, "m_exact": 1.145, "m_c_chr":
                 2.53, "m_c_wrd": 3.037, "m_cov_q": 2.745, "m_cov_c": -1.464, "m_len_r": 0.979,
                 "m_jac": 1.307, "m_part": 1.05, "m_q_miss": -0.166, "m_c_miss": 1.134}
WEIGHTS_PLAIN_ZH = {"bias": -0.986, "cos": -0.197, "fuzz": -0.698, "tset": -0.378, "exact":
                    -0.86, "c_chr": 3.454, "c_wrd": -3.748, "cov_q": 3.273, "cov_c": 1.826,
                    "len_r": 1.782, "jac": -3.308, "part": -1.505, "q_miss": -0.237, "c_miss":
                    -5.157, "m_cos": -0.09, "m_fuzz": 2.274, "m_tset": -3.728, "m_exact":
                    0.275, "m_c_chr": 2.093, "m_c_wrd": -1.45, "m_cov_q": 5.878, "m_cov_c":
                    -0.367, "m_len_r": 1.79, "m_jac": 5.74, "m_part": -0.477, "m_q_miss":
                    -2.239, "m_c_miss": 0.069}

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_TOKEN_RE = re.compile(r"(?u)\b\w+\b")
_LATIN_RUN = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def cjk_part(text: str) -> str:
    """The CJK runs of a normalised text, separated by spaces."""
    return " ".join(_CJK_RUN.findall(text))


@lru_cache(maxsize=50_000)
def _run_grams(run: str) -> tuple[str, ...]:
    """Character 1-3-grams of one CJK run (runs repeat: cached)."""
    return tuple(run[i:i + n] for n in (1, 2, 3) for i in range(len(run) - n + 1))


@lru_cache(maxsize=50_000)
def _word_grams(word: str) -> tuple[str, ...]:
    """Character 2-4-grams of one word padded with spaces (sklearn's char_wb)."""
    padded = f" {word} "
    return tuple(padded[i:i + n] for n in (2, 3, 4) for i in range(len(padded) - n + 1))


def _cjk_grams(text: str) -> list[str]:
    """The analyzer of the CJK block: per run, because words repeat far more
    than texts do, so the cache turns most of the build into list joins."""
    grams: list[str] = []
    for run in text.split():
        grams.extend(_run_grams(run))
    return grams


def _latin_grams(text: str) -> list[str]:
    grams: list[str] = []
    for word in text.split():
        grams.extend(_word_grams(word))
    return grams


def _word_ngrams(text: str) -> list[str]:
    """Word 1- and 2-grams of the Latin text (sklearn's ``analyzer="word"``)."""
    tokens = _TOKEN_RE.findall(text)
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]


def _zh_word_grams(lexicon: Lexicon) -> Callable[[str], tuple[str, ...]]:
    """Words and consecutive word pairs of one CJK run (word-level evidence:
    退款 and 退钱 share no character bigram once folded, and 怎么 退款 is one
    pair). Cached per run, like the character n-grams."""
    cache: dict[str, tuple[str, ...]] = {}

    def grams(run: str) -> tuple[str, ...]:
        found = cache.get(run)
        if found is None:
            words = lexicon.segment(run)
            found = words + tuple(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
            if len(cache) < 200_000:
                cache[run] = found
        return found

    return grams


def _per_unit(unit_grams: Callable[[str], tuple[str, ...]]) -> Callable[[str], list[str]]:
    def analyze(text: str) -> list[str]:
        grams: list[str] = []
        for unit in text.split():
            grams.extend(unit_grams(unit))
        return grams

    return analyze


def ngrams(text: str) -> list[str]:
    """All character n-grams of a normalised text, CJK and Latin (for clustering)."""
    return _cjk_grams(cjk_part(text)) + _latin_grams(latin_part(text))


def latin_part(text: str) -> str:
    """Everything but CJK (Latin letters, digits), CJK runs replaced by spaces."""
    return " ".join(part.strip() for part in _LATIN_RUN.findall(text) if part.strip())


@dataclass
class Candidate:
    entry_id: str
    question: str
    answer: str
    score: float
    matched_question: str
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "question": self.question,
            "answer": self.answer,
            "score": round(self.score, 4),
            "matched_question": self.matched_question,
        }


@dataclass
class Decision:
    #: answer, suggest or unrecognised
    kind: str
    candidates: list[Candidate]


def _unit_table(docs: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Number the distinct units (words, CJK runs) of ``docs``.

    Returns the units, the unit id of every unit occurrence (document by
    document) and the document of every occurrence. Units repeat far more than
    documents, so everything after this works per distinct unit or in numpy.
    Units are split at white space: a normalised text has nothing but word
    characters and single spaces, so these are also its ``\\w+`` tokens.
    """
    split = list(map(str.split, docs))
    lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(docs))
    flat = list(itertools.chain.from_iterable(split))
    ids = {unit: i for i, unit in enumerate(dict.fromkeys(flat))}
    occurrences = np.fromiter(map(ids.__getitem__, flat), dtype=np.int32, count=len(flat))
    owners = np.repeat(np.arange(len(docs), dtype=np.int32), lengths)
    return list(ids), occurrences, owners


#: Occurrences (words, CJK runs) expanded to n-grams per step in ``_gather``:
#: its index arithmetic is int64, so expanding all 10 million n-grams of a
#: 100,000-question build at once took 250 MB of temporaries.
GATHER_CHUNK = 200_000


def _gather(unit_cols: list[np.ndarray], occurrences: np.ndarray, owners: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every n-gram occurrence, from each unit's column array,
    in row order (int32: a 100,000-question build has over 10 million)."""
    sizes = np.fromiter(map(len, unit_cols), dtype=np.int64, count=len(unit_cols))
    if not len(sizes) or not len(occurrences):
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    starts = np.cumsum(sizes) - sizes
    flat_cols = np.concatenate(unit_cols).astype(np.int32, copy=False)
    per = sizes[occurrences]
    total = int(per.sum())
    rows = np.empty(total, dtype=np.int32)
    cols = np.empty(total, dtype=np.int32)
    at = 0
    for first in range(0, len(occurrences), GATHER_CHUNK):
        occ = occurrences[first:first + GATHER_CHUNK]
        chunk_per = per[first:first + GATHER_CHUNK]
        size = int(chunk_per.sum())
        out_start = np.cumsum(chunk_per) - chunk_per
        idx = np.arange(size, dtype=np.int64)
        idx -= np.repeat(out_start - starts[occ], chunk_per)
        rows[at:at + size] = np.repeat(owners[first:first + GATHER_CHUNK], chunk_per)
        cols[at:at + size] = flat_cols[idx]
        at += size
    return rows, cols


class _Block:
    """One TF-IDF block's vocabulary and idf over one part of the text.

    The numbers are those of scikit-learn's ``TfidfVectorizer(sublinear_tf=
    True)`` (smooth idf, each block's rows l2-normalised, vocabulary in sorted
    order), but the n-grams are counted per distinct word or CJK run and then
    in numpy: sklearn's fit looks every n-gram occurrence up in a Python loop,
    three quarters of the build of a 100,000-question index.

    ``kind``: ``cjk`` (character 1-3-grams of each CJK run), ``zhwords``
    (jieba words and word pairs of each CJK run, with the team's lexicon),
    ``chars`` (character 2-4-grams of each Latin word, padded) or ``words``
    (word 1- and 2-grams of the Latin text).
    """

    def __init__(self, kind: str, lexicon: Lexicon = EMPTY) -> None:
        self.kind = kind
        self.lexicon = lexicon
        self.vocabulary: dict[str, int] = {}
        self.idf = np.zeros(0, dtype=np.float32)
        self._analyzers()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (``meiqia bot ask`` caches indexes): the analyzers are
        closures, rebuilt from ``kind`` and ``lexicon`` on load."""
        state = dict(self.__dict__)
        state.pop("unit_grams", None)
        state.pop("analyze", None)
        state.pop("_unit_cols", None)
        state.pop("_unit_cols_of", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._analyzers()

    def query_counts(self, text: str) -> dict[int, int]:
        """How often each known column occurs in one question's part ``text``,
        in the order of first occurrence (what counting ``analyze(text)``
        n-gram by n-gram gives, which ``transform_one`` relies on). The
        columns of each word or CJK run are kept (``QUERY_UNITS`` of them per
        block): a long question's words repeat the KB's, and looking up each
        of its hundreds of n-grams again was most of its featurisation."""
        vocab = self.vocabulary
        if self.kind == "words":  # word pairs cross the units: no cache
            counts = Counter(map(vocab.get, _word_ngrams(text)))
            counts.pop(None, None)
            return counts
        if getattr(self, "_unit_cols_of", None) is not vocab:
            self._unit_cols: dict[str, tuple[int, ...]] = {}
            self._unit_cols_of = vocab
        cache = self._unit_cols
        found = []
        for unit in text.split():
            cols = cache.get(unit)
            if cols is None:
                cols = tuple(c for c in map(vocab.get, self.unit_grams(unit)) if c is not None)
                if len(cache) < QUERY_UNITS:
                    cache[unit] = cols
            found.append(cols)
        return Counter(itertools.chain.from_iterable(found))

    def _analyzers(self) -> None:
        kind, lexicon = self.kind, self.lexicon
        self.unit_grams: Callable[[str], tuple[str, ...]] = {
            "cjk": _run_grams, "chars": _word_grams, "words": _word_grams,
            "zhwords": _zh_word_grams(lexicon),
        }[kind]
        self.analyze: Callable[[str], list[str]] = {
            "cjk": _cjk_grams, "chars": _latin_grams, "words": _word_ngrams,
            "zhwords": _per_unit(self.unit_grams),
        }[kind]

    @property
    def width(self) -> int:
        return len(self.vocabulary)

    def occurrences(self, table: tuple[list[str], np.ndarray, np.ndarray], fit: bool
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every n-gram occurrence; ``fit`` sets the vocabulary
        (else n-grams outside it are dropped)."""
        units, occurrences, owners = table
        if self.kind != "words":
            grams = [self.unit_grams(u) for u in units]
            if fit:
                vocab = sorted(set(itertools.chain.from_iterable(grams)))
                self.vocabulary = {g: i for i, g in enumerate(vocab)}
            get = self.vocabulary.get
            unit_cols = []
            for unit in grams:
                cols = np.fromiter(map(get, unit, itertools.repeat(-1)), dtype=np.int64,
                                   count=len(unit))
                unit_cols.append(cols if fit else cols[cols >= 0])
            return _gather(unit_cols, occurrences, owners)
        # Word 1- and 2-grams: a bigram is two consecutive units of one document.
        width = max(len(units), 1)
        same_doc = owners[1:] == owners[:-1]
        first, second = occurrences[:-1][same_doc], occurrences[1:][same_doc]
        keys, inverse = np.unique(first * width + second, return_inverse=True)
        bigrams = [f"{units[k // width]} {units[k % width]}" for k in keys.tolist()]
        if fit:
            self.vocabulary = {g: i for i, g in enumerate(sorted({*units, *bigrams}))}
        get = self.vocabulary.get
        unit_col = np.fromiter(map(get, units, itertools.repeat(-1)), dtype=np.int64,
                               count=len(units))
        pair_col = np.fromiter(map(get, bigrams, itertools.repeat(-1)), dtype=np.int64,
                               count=len(bigrams))
        rows = np.concatenate([owners, owners[:-1][same_doc]])
        cols = np.concatenate([unit_col[occurrences], pair_col[inverse.ravel()]])
        known = cols >= 0
        rows, cols = rows[known], cols[known].astype(np.int32)
        order = np.argsort(rows, kind="stable")  # two sorted runs: a linear merge
        return rows[order], cols[order]


class _Features:
    """The three blocks, fitted together, producing one l2-normalised row.

    The whole matrix is counted in one sparse build (all blocks at once, no
    stacking); a single query is vectorised by hand from the fitted
    vocabularies and idf weights (``transform_one``), because building arrays
    for one short question costs more than the arithmetic.
    """

    KINDS = (("cjk", 0), ("zhwords", 0), ("chars", 1), ("words", 1))

    def __init__(self, lexicon: Lexicon = EMPTY) -> None:
        self.lexicon = lexicon
        #: (block, column offset, which part of the text: 0 CJK, 1 Latin)
        self.blocks: list[tuple[_Block, int, int]] = []
        #: (analyzer, vocabulary, idf, column offset, which part) per block
        #: (column counter, idf, column offset, which part) per block
        self.parts: list[tuple[Callable[[str], dict[int, int]], np.ndarray, int, int]] = []
        self.width = 0
        self.is_word_col = np.zeros(1, dtype=bool)
        self.word_blocks: list[_Block] = []
        self.max_idf = 1.0
        self._idf_cache: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("parts", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.parts = [(b.query_counts, b.idf, o, w) for b, o, w in self.blocks]

    def word_norm2(self, matrix: sparse.csr_matrix) -> np.ndarray:
        """Squared length of each row's part in the word blocks (row-major rows)."""
        masked = matrix.copy()
        masked.data = np.where(self.is_word_col[matrix.indices], matrix.data, 0.0
                               ).astype(np.float32)
        return self._row_norm2(masked)

    def word_idf(self, word: str) -> float:
        """The idf of a word in the word blocks (unknown: the highest there is)."""
        found = self._idf_cache.get(word)
        if found is not None:
            return found
        found = self.max_idf
        for block in self.word_blocks:
            col = block.vocabulary.get(word)
            if col is not None:
                found = float(block.idf[col])
                break
        if len(self._idf_cache) < 100_000:
            self._idf_cache[word] = found
        return found

    def fit_transform(self, texts: list[str]) -> sparse.csr_matrix:
        return self._matrix(texts, fit=True)

    def transform(self, texts: list[str]) -> sparse.csr_matrix:
        """Rows for new texts in the fitted columns (unseen n-grams are dropped)."""
        return self._matrix(texts, fit=False)

    def transform_one(self, text: str, most: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, l2-normalised weights) of one normalised text;
        with ``most``, only that many columns, those of the highest weight."""
        columns = (cjk_part(text), latin_part(text))
        all_cols: list[int] = []
        all_vals: list[float] = []
        for counter, idf, offset, which in self.parts:
            if not columns[which]:
                continue
            counts = counter(columns[which])
            if not counts:
                continue
            # Each block is l2-normalised on its own, as in fit (blocks own
            # disjoint columns: appending them is the one dict of before).
            cols_b = list(counts)
            block = [(_SUBLINEAR[n] if n < len(_SUBLINEAR) else 1.0 + math.log(n)) * w
                     for n, w in zip(counts.values(), idf[cols_b].tolist(), strict=True)]
            norm = math.sqrt(sum(v * v for v in block)) or 1.0
            all_cols.extend([offset + c for c in cols_b] if offset else cols_b)
            all_vals.extend([v / norm for v in block])
        if not all_cols:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        cols = np.array(all_cols, dtype=np.int64)
        vals = np.array(all_vals, dtype=np.float32)
        if most and cols.size > most:
            keep = np.argpartition(-vals, most - 1)[:most]
            cols, vals = cols[keep], vals[keep]
        return cols, vals / np.float32(np.linalg.norm(vals) or 1.0)

    def _matrix(self, texts: list[str], fit: bool) -> sparse.csr_matrix:
        pieces = self._pieces(texts, fit)
        n = len(texts)
        if not self.blocks:
            return sparse.csr_matrix((n, max(self.width, 1)), dtype=np.float32)
        matrix = _hstack_rows(pieces, [o for _, o, _ in self.blocks], n, self.width)
        # Every block's part of a non-empty row has unit length: the row's length
        # is the square root of how many blocks it has.
        blocks_in_row = sum((np.diff(p.indptr) > 0).astype(np.float32) for p in pieces)
        _scale_rows(matrix, np.sqrt(blocks_in_row))
        return matrix

    def fit_by_feature(self, texts: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """``fit_transform``'s matrix, but feature-major (features x texts), and
        each row's squared length in the word blocks.

        Built in two passes over ``BUILD_CHUNK`` texts at a time, straight into
        the final arrays: the first counts each n-gram's documents (its idf,
        and also its row's length in the feature-major matrix, so every value
        has its place before any is computed), the second computes the values
        of each chunk and puts them there. A build holds the result and one
        chunk's temporaries, never a second copy of the matrix: the whole-matrix
        counts, its row-major pieces and their transposes side by side took
        twice the index at 100,000 questions (issue 20).
        """
        n = len(texts)
        columns = ([cjk_part(t) for t in texts], [latin_part(t) for t in texts])
        tables = [_unit_table(column) if any(column) else None for column in columns]
        del columns
        chunks = [(first, min(first + BUILD_CHUNK, n)) for first in range(0, n, BUILD_CHUNK)]
        fitted: list[tuple[_Block, int, _Gatherer]] = []
        self.blocks = []
        offset = 0
        in_row = np.zeros(n, dtype=np.float32)  # non-empty blocks of each row
        for kind, which in self.KINDS:
            table = tables[which]
            if table is None:
                continue
            block = _Block(kind, self.lexicon)
            gather = _Gatherer(block, table)
            if block.width == 0:
                continue
            df = np.zeros(block.width, dtype=np.int64)
            for first, last in chunks:
                counts = gather.counts(first, last)
                df += np.bincount(counts.indices, minlength=block.width)
                in_row[first:last] += np.diff(counts.indptr) > 0
            block.idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
            self.blocks.append((block, offset, which))
            fitted.append((block, offset, gather))
            gather.df = df
            offset += block.width
        self._fitted(offset)
        if not fitted:
            return (sparse.csr_matrix((max(self.width, 1), n), dtype=np.float32),
                    np.zeros(n, dtype=np.float32))
        release_free_memory()  # the first pass's temporaries, before the result is allocated
        # Feature-major row lengths are the document frequencies: the layout is known.
        lengths = np.concatenate([g.df for _, _, g in fitted])
        nnz = int(lengths.sum())
        indptr = np.zeros(self.width + 1, dtype=_index_dtype(nnz))
        np.cumsum(lengths, out=indptr[1:])
        del lengths
        data = np.empty(nnz, dtype=np.float32)
        indices = np.empty(nnz, dtype=np.int32)
        filled = indptr[:-1].astype(np.int64)  # next free place in each feature row
        word_norm2 = np.zeros(n, dtype=np.float32)
        row_scale = np.sqrt(in_row)
        for block, offset, gather in fitted:
            gather.df = None
            for first, last in chunks:
                piece = gather.counts(first, last)
                _tfidf_values(piece, block.idf)
                _scale_rows(piece, row_scale[first:last])
                if block.kind in ("zhwords", "words"):
                    word_norm2[first:last] += self._row_norm2(piece)
                flipped = piece.T.tocsr()
                del piece
                per = np.diff(flipped.indptr)
                where = filled[offset:offset + block.width]
                at = np.repeat(where - flipped.indptr[:-1], per)
                at += np.arange(flipped.nnz, dtype=np.int64)
                data[at] = flipped.data
                indices[at] = flipped.indices + first
                where += per
                del flipped, at, per
        return sparse.csr_matrix((data, indices, indptr), shape=(self.width, n)), word_norm2

    @staticmethod
    def _row_norm2(matrix: sparse.csr_matrix) -> np.ndarray:
        out = np.zeros(matrix.shape[0], dtype=np.float32)
        lengths = np.diff(matrix.indptr)
        filled = lengths > 0
        if filled.any():
            out[filled] = np.add.reduceat(np.square(matrix.data, dtype=np.float32),
                                          matrix.indptr[:-1][filled])
        return out

    def _pieces(self, texts: list[str], fit: bool) -> list[sparse.csr_matrix]:
        """Each block's rows (l2-normalised per block), fitting the blocks when ``fit``."""
        columns = ([cjk_part(t) for t in texts], [latin_part(t) for t in texts])
        tables = [_unit_table(column) if any(column) else None for column in columns]
        del columns
        if fit:
            self.blocks = []
            offset = 0
            pending = [(_Block(kind, self.lexicon), which) for kind, which in self.KINDS
                       if tables[which]]
        else:
            pending = [(block, which) for block, _, which in self.blocks]
        n = len(texts)
        pieces = []
        for block, which in pending:
            table = tables[which]
            if fit:
                rows, cols = block.occurrences(table, fit)
                if block.width == 0:
                    continue
                self.blocks.append((block, offset, which))
                offset += block.width
            elif table is None:
                rows = cols = np.zeros(0, dtype=np.int32)
            else:
                rows, cols = block.occurrences(table, fit)
            pieces.append(_tfidf_block(block, rows, cols, n, fit))
            del rows, cols  # before the next block's occurrences
        if fit:
            self._fitted(offset)
        return pieces

    def _fitted(self, width: int) -> None:
        """The lookups derived from the fitted blocks."""
        self.width = width
        self.parts = [(b.query_counts, b.idf, o, w) for b, o, w in self.blocks]
        self.is_word_col = np.zeros(max(self.width, 1), dtype=bool)
        self.word_blocks = []
        for b, o, _ in self.blocks:
            if b.kind in ("zhwords", "words"):
                self.is_word_col[o:o + b.width] = True
                self.word_blocks.append(b)
        self.max_idf = float(max((float(b.idf.max()) for b in self.word_blocks
                                  if b.width), default=1.0))
        self._idf_cache = {}


#: Texts per step of ``_Features.fit_by_feature``: its temporaries are one
#: chunk's n-grams (about 1.2 million at 100,000 CLINC-like questions).
BUILD_CHUNK = 5_000
#: Words (CJK runs) per block whose known columns ``_Block.query_counts`` keeps.
QUERY_UNITS = 5_000
#: 1 + log(n), the sublinear term frequency, for the counts a question has.
_SUBLINEAR = [0.0] + [1.0 + math.log(n) for n in range(1, 64)]


class _Gatherer:
    """One fitted block's n-gram counts for any range of the documents.

    Fits the block's vocabulary on the whole table at construction; each
    unit's (word's, CJK run's) columns are looked up once, so a range costs
    only the numpy expansion of its occurrences.
    """

    def __init__(self, block: _Block, table: tuple[list[str], np.ndarray, np.ndarray]) -> None:
        self.block = block
        units, self.occurrences, self.owners = table
        self.df: np.ndarray | None = None
        if block.kind != "words":
            grams = [block.unit_grams(u) for u in units]
            vocab = sorted(set(itertools.chain.from_iterable(grams)))
            block.vocabulary = {g: i for i, g in enumerate(vocab)}
            get = block.vocabulary.get
            self.unit_cols = [np.fromiter(map(get, unit), dtype=np.int64, count=len(unit))
                              for unit in grams]
            return
        # Word 1- and 2-grams: a bigram is two consecutive units of one document.
        self.width_units = width = max(len(units), 1)
        same = self.owners[1:] == self.owners[:-1]
        self.pair_keys = np.unique(self.occurrences[:-1][same].astype(np.int64) * width
                                   + self.occurrences[1:][same])
        bigrams = [f"{units[k // width]} {units[k % width]}" for k in self.pair_keys.tolist()]
        block.vocabulary = {g: i for i, g in enumerate(sorted({*units, *bigrams}))}
        get = block.vocabulary.get
        self.unit_col = np.fromiter(map(get, units), dtype=np.int32, count=len(units))
        self.pair_col = np.fromiter(map(get, bigrams), dtype=np.int32, count=len(bigrams))

    def counts(self, first: int, last: int) -> sparse.csr_matrix:
        """Counts of documents ``first`` to ``last`` (rows), columns sorted."""
        lo, hi = np.searchsorted(self.owners, (first, last))
        occ = self.occurrences[lo:hi]
        owners = self.owners[lo:hi] - first
        if self.block.kind != "words":
            rows, cols = _gather(self.unit_cols, occ, owners)
        else:
            same = owners[1:] == owners[:-1]
            keys = occ[:-1][same].astype(np.int64) * self.width_units + occ[1:][same]
            rows = np.concatenate([owners, owners[:-1][same]])
            cols = np.concatenate([self.unit_col[occ],
                                   self.pair_col[np.searchsorted(self.pair_keys, keys)]])
            order = np.argsort(rows, kind="stable")  # two sorted runs: a linear merge
            rows, cols = rows[order], cols[order]
        n = last - first
        indptr = np.zeros(n + 1, dtype=_index_dtype(len(cols)))
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        counts = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, indptr),
                                   shape=(n, max(self.block.width, 1)))
        counts.sum_duplicates()
        return counts


def _tfidf_values(counts: sparse.csr_matrix, idf: np.ndarray) -> None:
    """Counts to sublinear tf times idf, each row l2-normalised, in place."""
    counts.data = np.log(counts.data, out=counts.data)
    counts.data += 1.0
    counts.data *= idf[counts.indices]
    _l2(counts)


def _tfidf_block(block: _Block, rows: np.ndarray, cols: np.ndarray, n: int,
                 fit: bool) -> sparse.csr_matrix:
    """One block's rows: counts of the (row-sorted) occurrences, sublinear tf
    times idf (fitted here when ``fit``), each row l2-normalised."""
    indptr = np.zeros(n + 1, dtype=_index_dtype(len(cols)))
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    counts = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, indptr),
                               shape=(n, max(block.width, 1)))
    del rows, cols
    counts.sum_duplicates()  # sorts each row's columns and adds up repeats
    if fit:
        df = np.bincount(counts.indices, minlength=block.width)
        block.idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    _tfidf_values(counts, block.idf)
    return counts


def _index_dtype(nnz: int) -> type:
    """int32 indices while they fit (half the memory of scipy's int64 fallback)."""
    return np.int32 if nnz < 2**31 - 1 else np.int64


def _hstack_rows(pieces: list[sparse.csr_matrix], offsets: list[int], n: int,
                 width: int) -> sparse.csr_matrix:
    """The blocks side by side (columns shifted by ``offsets``), placed straight
    into the result's arrays: scipy's hstack copied them twice over."""
    if len(pieces) == 1:
        return pieces[0]
    lengths = [np.diff(p.indptr) for p in pieces]
    nnz = sum(p.nnz for p in pieces)
    indptr = np.zeros(n + 1, dtype=_index_dtype(nnz))
    np.cumsum(sum(lengths), out=indptr[1:])
    data = np.empty(nnz, dtype=np.float32)
    indices = np.empty(nnz, dtype=np.int32)
    before = np.zeros(n, dtype=np.int64)  # entries of earlier blocks in each row
    for piece, length, offset in zip(pieces, lengths, offsets, strict=True):
        # Position of each entry: its row's start, after the earlier blocks' entries.
        at = np.repeat(indptr[:-1] + before - piece.indptr[:-1], length)
        at += np.arange(piece.nnz, dtype=np.int64)
        data[at] = piece.data
        indices[at] = piece.indices + offset
        before += length
    return sparse.csr_matrix((data, indices, indptr), shape=(n, width))


def _scale_rows(matrix: sparse.csr_matrix, norms: np.ndarray) -> None:
    """Divide each row of ``matrix`` by its entry of ``norms``, in place (0: left)."""
    norms = np.where(norms == 0, 1.0, norms).astype(np.float32)
    matrix.data /= np.repeat(norms, np.diff(matrix.indptr))


#: ``progress(fraction, message)``: how far a build is (0..1), for a job's progress bar.
Progress = Callable[[float, str], None]


def count(n: int, one: str, many: str) -> str:
    """``n`` and its noun for a person to read: "1 entry", "2,000 entries"."""
    return f"{n:,} {one if n == 1 else many}"


def _no_progress(fraction: float, message: str) -> None:
    """The default: nobody is watching."""


def _variants(entries: list[KBEntry], first: int, progress: Progress = _no_progress,
              share: float = 0.0, lexicon: Lexicon = EMPTY
              ) -> tuple[list[str], list[int], list[str]]:
    """Normalised questions, their entry positions (from ``first``) and originals.

    Normalising is a third of a large build, so it reports ``progress`` up to
    ``share`` every 200 entries.
    """
    texts: list[str] = []
    owners: list[int] = []
    originals: list[str] = []
    for i, entry in enumerate(entries, start=first):
        if share and (i - first) % 200 == 0:
            progress(share * (i - first) / len(entries),
                     f"normalising questions ({i - first:,} of "
                     f"{count(len(entries), 'entry', 'entries')})")
        for question in entry.questions:
            # Interned: a rebuild beside the answering index shares its strings.
            norm = sys.intern(lexicon.fold(normalize(question)))
            if norm:
                texts.append(norm)
                owners.append(i)
                originals.append(question)
    return texts, owners, originals


def _embed(encoder: semantic.Encoder, originals: list[str], progress: Progress
           ) -> np.ndarray:
    """The variants' sentence vectors (float16), reporting progress from 0.4 to 0.6."""
    total = len(originals)
    told = 0

    def heard(done: int) -> None:
        nonlocal told
        if done - told >= 640 or done == total:  # about every 640 questions
            told = done
            progress(0.4 + 0.2 * done / total,
                     f"reading the meaning of {total:,} questions ({done:,} done)")

    return encoder.encode(originals, heard).astype(np.float16)


def _training_matrix(by_feature: sparse.csr_matrix, emb: np.ndarray | None
                     ) -> sparse.csr_matrix:
    """Variants x features for the classifier: the n-grams (each row of unit
    length) and, where the index has them, the 384 embedding dimensions (unit
    length too), so both kinds of evidence weigh alike before training."""
    matrix = by_feature.T.tocsr()  # row-major, for the training only
    if emb is None:
        return matrix
    return sparse.hstack([matrix, sparse.csr_matrix(emb.astype(np.float32))],
                         format="csr", dtype=np.float32)


@lru_cache(maxsize=1)
def _libc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Give the pages freed by a build back to the system.

    A build's temporaries are tens of MB in many pieces; glibc keeps freed
    memory in the arena of the thread that freed it, and a background refit
    runs in another thread (another arena), so without this the memory of one
    build was not reused by the next and stayed resident beside the index.
    """
    trim = _libc_trim()
    if trim is not None:
        trim(0)


def _rows_t_times(matrix: sparse.csr_matrix, rows: np.ndarray, dense: np.ndarray
                  ) -> np.ndarray:
    """``matrix[rows].T @ dense`` for a float32 CSR ``matrix`` and a C-ordered
    float32 ``dense`` (the query's retrieval product), by the two SciPy kernels
    that expression runs (the rows copied out, then one pass over them per
    output column), without SciPy's checks and wrappers around them: 0.1 ms of
    a long question's 0.5. The same kernels in the same order: the same bits.
    Anything else goes through SciPy."""
    if (_sparsetools is None or matrix.dtype != np.float32 or dense.dtype != np.float32
            or not dense.flags.c_contiguous or matrix.indptr.dtype != matrix.indices.dtype):
        return matrix[rows].T @ dense
    indptr = matrix.indptr
    rows = rows.astype(indptr.dtype, copy=False)
    sub_indptr = np.zeros(rows.size + 1, dtype=indptr.dtype)
    np.cumsum(indptr[rows + 1] - indptr[rows], out=sub_indptr[1:])
    nnz = int(sub_indptr[-1])
    sub_indices = np.empty(nnz, dtype=indptr.dtype)
    sub_data = np.empty(nnz, dtype=np.float32)
    _sparsetools.csr_row_index(rows.size, rows, indptr, matrix.indices, matrix.data,
                               sub_indices, sub_data)
    out = np.zeros((matrix.shape[1], dense.shape[1]), dtype=np.float32)
    _sparsetools.csc_matvecs(matrix.shape[1], rows.size, dense.shape[1], sub_indptr,
                             sub_indices, sub_data, dense.ravel(), out.ravel())
    return out


def _l2(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Scale each row to unit length, in place (all-zero rows stay zero)."""
    lengths = np.diff(matrix.indptr)
    sums = np.zeros(matrix.shape[0], dtype=np.float64)
    filled = lengths > 0
    if filled.any():
        sums[filled] = np.add.reduceat(np.square(matrix.data, dtype=np.float64),
                                       matrix.indptr[:-1][filled])
    _scale_rows(matrix, np.sqrt(sums))
    return matrix


#: Feature rows per step of ``_patch_columns`` (bounds its temporaries).
PATCH_STEP = 4096


def _patch_columns(matrix: sparse.csr_matrix, keep: np.ndarray,
                   added: sparse.csr_matrix | None) -> sparse.csr_matrix:
    """The feature-major ``matrix`` with only the columns (variants) in ``keep``
    and ``added``'s columns after them, written straight into the new arrays a
    few feature rows at a time.

    scipy's column selection and ``hstack`` went through COO copies with int64
    indices: an edit of a 100,000-question index took 250 MB more than the
    index while the old one still answered (issue 20).
    """
    n_features = matrix.shape[0]
    new_col = (np.cumsum(keep, dtype=np.int64) - 1).astype(np.int32)
    n_kept = int(keep.sum())
    n_added = 0 if added is None else added.shape[1]
    nnz = int(np.count_nonzero(keep[matrix.indices])) + (0 if added is None else added.nnz)
    data = np.empty(nnz, dtype=np.float32)
    indices = np.empty(nnz, dtype=np.int32)
    indptr = np.zeros(n_features + 1, dtype=_index_dtype(nnz))
    at = 0
    for first in range(0, n_features, PATCH_STEP):
        last = min(first + PATCH_STEP, n_features)
        lo, hi = int(matrix.indptr[first]), int(matrix.indptr[last])
        cols = matrix.indices[lo:hi]
        kept = keep[cols]
        rows = np.repeat(np.arange(last - first, dtype=np.int32),
                         np.diff(matrix.indptr[first:last + 1]))[kept]
        vals = matrix.data[lo:hi][kept]
        cols = new_col[cols[kept]]
        if added is not None:
            a_lo, a_hi = int(added.indptr[first]), int(added.indptr[last])
            rows = np.concatenate([rows, np.repeat(np.arange(last - first, dtype=np.int32),
                                                   np.diff(added.indptr[first:last + 1]))])
            vals = np.concatenate([vals, added.data[a_lo:a_hi].astype(np.float32)])
            cols = np.concatenate([cols, added.indices[a_lo:a_hi].astype(np.int32) + n_kept])
            order = np.argsort(rows, kind="stable")  # kept first in each row, then added
            rows, vals, cols = rows[order], vals[order], cols[order]
        size = len(rows)
        data[at:at + size] = vals
        indices[at:at + size] = cols
        indptr[first + 1:last + 1] = at + np.cumsum(np.bincount(rows, minlength=last - first))
        at += size
    return sparse.csr_matrix((data, indices, indptr), shape=(n_features, n_kept + n_added))


class _State:
    """Everything one build produces; never changed after construction."""

    def __init__(self, entries: list[KBEntry], use_classifier: bool | None,
                 progress: Progress = _no_progress, lexicon: Lexicon = EMPTY) -> None:
        self.entries = [e for e in entries if e.enabled and e.questions]
        self.lexicon = lexicon
        texts, owners, originals = _variants(self.entries, 0, progress, 0.35, lexicon)
        self.texts = texts
        self.originals = originals
        self.owners = np.asarray(owners, dtype=np.int32)
        self.features = _Features(lexicon)
        self.coef: np.ndarray | None = None
        self.intercept = np.zeros(0, dtype=np.float32)
        self.classes = np.zeros(0, dtype=np.int32)
        #: Where the classifier also reads sentence embeddings (``semantic``):
        #: its weights over the 384 dimensions (dimensions x entries) and each
        #: variant's vector (float16, for the classifier columns an edit trains).
        self.coef_emb: np.ndarray | None = None
        self.emb: np.ndarray | None = None
        #: Feature-major (features x variants, CSR): a query touches only the rows
        #: of its own n-grams. The only copy of the TF-IDF matrix an index keeps.
        self.by_feature: sparse.csr_matrix | None = None
        #: Questions added by edits since the last full build, feature-major
        #: (their columns follow ``by_feature``'s), and which questions are
        #: gone (``owners`` -1): an edit of a large index shares the big matrix
        #: with the state before it instead of copying it (``patched``).
        self.extra: sparse.csr_matrix | None = None
        self.dead: np.ndarray | None = None
        #: Squared length of each variant's word-block part (its character part
        #: is the rest of 1): the two block cosines without the variant's row.
        self.word_norm2 = np.zeros(0, dtype=np.float32)
        if texts:
            progress(0.35, f"counting the n-grams of {len(texts):,} questions")
            by_feature, self.word_norm2 = self.features.fit_by_feature(texts)
            n_entries = len(self.entries)
            if use_classifier is None:
                use_classifier = (
                    2 <= n_entries <= CLASSIFIER_MAX_ENTRIES
                    and len(texts) <= CLASSIFIER_MAX_VARIANTS
                    and len(texts) / n_entries >= CLASSIFIER_MIN_VARIANTS
                    and by_feature.shape[0] * n_entries <= CLASSIFIER_MAX_WEIGHTS
                )
            if use_classifier and n_entries >= 2:
                encoder = semantic.encoder() if semantic.wanted(originals) else None
                if encoder is not None:
                    self.emb = _embed(encoder, originals, progress)
                progress(0.6, f"training the classifier over {count(n_entries, 'entry', 'entries')}")
                classifier = LinearSVC(C=SVM_C, random_state=0)
                matrix = _training_matrix(by_feature, self.emb)
                classifier.fit(matrix, self.owners)
                del matrix
                coef = classifier.coef_
                intercept = classifier.intercept_
                if coef.shape[0] == 1:  # two entries: one binary decision
                    coef = np.vstack([-coef[0], coef[0]])
                    intercept = np.array([-intercept[0], intercept[0]])
                width = by_feature.shape[0]  # the embedding's weights follow the n-grams'
                self.coef = np.ascontiguousarray(coef[:, :width].T, dtype=np.float32)
                if self.emb is not None:
                    self.coef_emb = np.ascontiguousarray(coef[:, width:].T, dtype=np.float32)
                self.intercept = intercept.astype(np.float32)
                self.classes = classifier.classes_.astype(np.int32)
                del classifier
            progress(0.9, "building the lookups")
            # Only the feature-major copy is kept (both doubled the index: issue 20).
            self.by_feature = by_feature
        self._finish()
        release_free_memory()
        progress(1.0, f"{count(len(self.entries), 'entry', 'entries')}, "
                      f"{count(len(texts), 'question', 'questions')} indexed")

    def _finish(self) -> None:
        """Derived lookups: entry positions, variant rows per entry, exact texts."""
        self.by_id = {e.id: i for i, e in enumerate(self.entries)}
        live = np.flatnonzero(self.owners >= 0)
        order = live[np.argsort(self.owners[live], kind="stable")]
        bounds = np.cumsum(np.bincount(self.owners[live], minlength=len(self.entries)))[:-1]
        self.rows_of = np.split(order, bounds) if len(self.entries) else []
        self.exact: dict[str, int] = {}
        for text, owner in zip(self.texts, self.owners.tolist(), strict=True):
            if owner >= 0:
                self.exact.setdefault(text, owner)

    def warm_up(self) -> None:
        """Ask one of its own questions once, so that the first visitor does not
        pay for the code paths NumPy, SciPy and rapidfuzz set up on first use
        (the first query of a process took 2-3 times the CPU of the next)."""
        if self.texts:
            self.query(self.texts[0], 1)

    def patched(self, changes: dict[str, KBEntry | None]) -> _State:
        """A new state with ``changes`` applied (None removes), without refitting.

        The vocabulary and idf weights stay those of the last full build (n-grams
        no question had then are ignored until the next one); only the changed
        entries' rows are vectorised and only their one-vs-rest classifier
        columns are trained, so an edit costs milliseconds, not a rebuild.
        """
        if self.coef is None:
            return self._patched_shared(changes)
        new = object.__new__(_State)
        new.extra = new.dead = None
        keep = [i for i, e in enumerate(self.entries) if e.id not in changes]
        added = [e for e in changes.values() if e is not None and e.enabled and e.questions]
        new.entries = [self.entries[i] for i in keep] + added
        remap = np.full(len(self.entries) + 1, -1, dtype=np.int32)
        remap[keep] = np.arange(len(keep), dtype=np.int32)
        row_keep = remap[self.owners] >= 0
        kept_rows = np.flatnonzero(row_keep)
        new.lexicon = self.lexicon
        texts, owners, originals = _variants(added, len(keep), lexicon=self.lexicon)
        new.texts = [self.texts[i] for i in kept_rows] + texts
        new.originals = [self.originals[i] for i in kept_rows] + originals
        new.owners = np.concatenate([remap[self.owners[kept_rows]],
                                     np.asarray(owners, dtype=np.int32)])
        new.features = self.features
        assert self.by_feature is not None
        norms = [self.word_norm2[kept_rows]]
        added_by_feature = None
        if texts:
            rows = self.features.transform(texts)
            norms.append(self.features.word_norm2(rows))
            added_by_feature = rows.T.tocsr()
        new.by_feature = _patch_columns(self.by_feature, row_keep, added_by_feature)
        new.word_norm2 = np.concatenate(norms).astype(np.float32)
        new.coef, new.intercept, new.classes = None, self.intercept, self.classes
        new.coef_emb = new.emb = None
        if self.emb is not None:
            encoder = semantic.encoder()
            if encoder is not None:
                new.emb = np.vstack([self.emb[kept_rows],
                                     encoder.encode(originals).astype(np.float16)])
        if self.coef is not None and len(new.entries) >= 2:
            # only KBs with a classifier (<= 30,000 rows)
            matrix = _training_matrix(new.by_feature, new.emb)
            columns = np.flatnonzero(remap[self.classes] >= 0)
            width = new.by_feature.shape[0]
            old_coef = (self.coef if new.emb is None
                        else np.vstack([self.coef, self.coef_emb]))
            coef = [old_coef[:, columns]]
            intercept = [self.intercept[columns]]
            classes = [remap[self.classes[columns]]]
            for owner in sorted(set(owners)):
                target = (new.owners == owner).astype(np.int32)
                binary = LinearSVC(C=SVM_C, random_state=0).fit(matrix, target)
                coef.append(binary.coef_.T.astype(np.float32))
                intercept.append(binary.intercept_.astype(np.float32))
                classes.append(np.asarray([owner], dtype=np.int32))
            joined = np.hstack(coef)
            new.coef = np.ascontiguousarray(joined[:width], dtype=np.float32)
            if new.emb is not None:
                new.coef_emb = np.ascontiguousarray(joined[width:], dtype=np.float32)
            new.intercept = np.concatenate(intercept).astype(np.float32)
            new.classes = np.concatenate(classes).astype(np.int32)
        new._finish()
        release_free_memory()
        return new

    def _patched_shared(self, changes: dict[str, KBEntry | None]) -> _State:
        """``patched`` for an index without the classifier (the large ones):
        the new state shares this one's matrix, marks the changed entries' old
        questions dead and keeps the new ones in a small matrix of its own, so
        an edit of a 100,000-question index costs the changed questions, not a
        copy of the index (the old state answers until the swap)."""
        new = object.__new__(_State)
        keep = [i for i, e in enumerate(self.entries) if e.id not in changes]
        added = [e for e in changes.values() if e is not None and e.enabled and e.questions]
        new.entries = [self.entries[i] for i in keep] + added
        remap = np.full(len(self.entries) + 1, -1, dtype=np.int32)  # [-1] stays -1: dead
        remap[keep] = np.arange(len(keep), dtype=np.int32)
        new.lexicon = self.lexicon
        texts, owners, originals = _variants(added, len(keep), lexicon=self.lexicon)
        new.texts = self.texts + texts
        new.originals = self.originals + originals
        new.owners = np.concatenate([remap[self.owners], np.asarray(owners, dtype=np.int32)])
        new.features = self.features
        new.by_feature = self.by_feature
        norms = [self.word_norm2]
        new.extra = self.extra
        if texts:
            rows = self.features.transform(texts)
            norms.append(self.features.word_norm2(rows))
            more = rows.T.tocsr().astype(np.float32)
            new.extra = more if self.extra is None else sparse.hstack(
                [self.extra, more], format="csr", dtype=np.float32)
        new.word_norm2 = np.concatenate(norms).astype(np.float32)
        new.dead = new.owners < 0
        new.coef, new.intercept, new.classes = None, self.intercept, self.classes
        new.coef_emb = new.emb = None
        new._finish()
        return new

    def words_of(self, norm: str) -> str:
        """The words of a normalised text, space-separated: jieba's (with the
        lexicon) for the CJK runs, the Latin words as they are. rapidfuzz's
        token_set_ratio over these is the word-overlap evidence."""
        if not _CJK_RUN.search(norm):
            return norm  # normalised Latin text is its words, one space apart
        parts: list[str] = []
        for run in norm.split():
            if _CJK_RUN.fullmatch(run):
                parts.extend(self.lexicon.segment(run))
            else:
                parts.extend(_CJK_RUN.sub(" ", run).split())
                for cjk in _CJK_RUN.findall(run):
                    parts.extend(self.lexicon.segment(cjk))
        return " ".join(parts)

    def _word_weights(self, words: str) -> dict[str, float]:
        """idf of each word of a text (words the KB never had: the highest idf)."""
        idf = self.features.word_idf
        return {word: idf(word) for word in words.split()}

    def query(self, text: str, k: int) -> list[Candidate]:
        text = text[:QUESTION_CHARS]
        norm = self.lexicon.fold(normalize_asked(text))
        if not norm or self.by_feature is None:
            return []
        cols, vals = self.features.transform_one(norm, QUERY_GRAMS)
        q_word = self.features.is_word_col[cols] if cols.size else np.zeros(0, dtype=bool)
        q_word_norm = float(np.sqrt(np.square(vals[q_word]).sum())) if cols.size else 0.0
        q_char_norm = float(np.sqrt(max(1.0 - q_word_norm ** 2, 0.0))) if cols.size else 0.0
        if cols.size == 0:
            sims = np.zeros(len(self.texts), dtype=np.float32)
            word_sims = sims
        else:
            # Both cosines in one product: all the query's n-grams, its words only.
            pair = np.empty((cols.size, 2), dtype=np.float32)
            pair[:, 0] = vals
            np.multiply(vals, q_word, out=pair[:, 1])
            both = _rows_t_times(self.by_feature, cols, pair)
            if self.extra is not None:  # questions added by edits since the build
                both = np.vstack([both, self.extra[cols].T @ pair])
            sims = np.ascontiguousarray(both[:, 0])
            word_sims = both[:, 1]
            if self.dead is not None:
                sims[self.dead] = -1.0  # questions removed by edits since the build
        top = min(TOP_VARIANTS, sims.shape[0])
        idx = np.argpartition(-sims, top - 1)[:top]
        best: dict[int, tuple[float, int]] = {}
        idx = idx[np.argsort(-sims[idx])]
        for v, owner, sim in zip(idx.tolist(), self.owners[idx].tolist(),
                                 sims[idx].tolist(), strict=True):
            if owner >= 0 and owner not in best:
                best[owner] = (sim, v)
        clf_scores: dict[int, float] = {}
        if self.coef is not None:
            decision = vals @ self.coef[cols] + self.intercept if cols.size else self.intercept
            if self.coef_emb is not None:
                encoder = semantic.encoder()
                if encoder is not None:  # off since the build: n-grams alone
                    decision = decision + encoder.encode([text], cache=False)[0] @ self.coef_emb
            order = np.argsort(-decision)[: max(RESCORE, k)]
            for owner, value in zip(self.classes[order].tolist(), decision[order].tolist(),
                                    strict=True):
                clf_scores[owner] = value
                if owner not in best:
                    rows = self.rows_of[owner]
                    v = int(rows[np.argmax(sims[rows])])
                    best[owner] = (float(sims[v]), v)
        exact_owner = self.exact.get(norm)
        ranked = sorted(
            best.items(),
            key=lambda item: -(item[1][0] + 0.3 * clf_scores.get(item[0], -1.0)),
        )[: max(RESCORE, k)]
        has_clf = self.coef is not None
        rows = []
        query_words = self.words_of(norm)
        q_weights = self._word_weights(query_words)
        oov = self.unknown_share(q_weights)
        q_chars = set(norm.replace(" ", ""))
        for owner, (cos, v) in ranked:
            w2 = float(self.word_norm2[v])
            c_wrd = (float(word_sims[v]) / (q_word_norm * math.sqrt(w2))
                     if q_word_norm and w2 > 0 else 0.0)
            c2 = 1.0 - w2
            c_chr = (float(sims[v] - word_sims[v]) / (q_char_norm * math.sqrt(c2))
                     if q_char_norm and c2 > 1e-9 else 0.0)
            c_weights = self._word_weights(self.words_of(self.texts[v]))
            rows.append((owner, v, {
                "cos": cos,
                "c_chr": c_chr,
                "c_wrd": c_wrd,
                "cov_q": _coverage(q_weights, c_weights),
                "cov_c": _coverage(c_weights, q_weights),
                **_char_overlap(norm, q_chars, self.texts[v]),
                "clf": clf_scores.get(owner, -1.5) if has_clf else 0.0,
                "fuzz": fuzz.ratio(norm, self.texts[v]) / 100.0,
                "tset": fuzz.token_set_ratio(query_words, self.words_of(self.texts[v])) / 100.0,
                "exact": 1.0 if owner == exact_owner else 0.0,
            }))
        for name in BASE_FEATURES:
            # Margin to the best other candidate: the best's rival is the second.
            floor = -1.5 if name == "clf" and has_clf else 0.0
            values = [r[2][name] for r in rows]
            first = max(range(len(values)), key=values.__getitem__) if values else -1
            second = max((v for i, v in enumerate(values) if i != first), default=floor)
            for i, (_, _, feats) in enumerate(rows):
                feats["m_" + name] = feats[name] - (second if i == first else values[first])
        model = 0 if has_clf else 2 if _CJK_RUN.search(norm) else 1
        weights = (WEIGHTS_CLF, WEIGHTS_PLAIN, WEIGHTS_PLAIN_ZH)[model]
        result = []
        for owner, v, feats in rows:
            entry = self.entries[owner]
            feats["model"] = float(model)  # which weights: index into calibrate.MODELS
            feats["oov"] = oov
            result.append(Candidate(entry.id, entry.questions[0], entry.answer,
                                    _score(feats, weights), self.originals[v], feats))
        result.sort(key=lambda c: -c.score)
        result = result[:k]
        for cand, hit in zip(result, self.keyword_hits(query_words, result), strict=True):
            cand.features["keyword"] = float(hit)
        return result

    def unknown_share(self, q_weights: dict[str, float]) -> float:
        """The idf-weighted share of a question's words that the KB has at most
        once (or never): out-of-scope questions are made of such words far more
        often than questions of the KB (CLINC150 validation: 0.39 against 0.08;
        zh_faq dev: 0.34 against 0.13), and no candidate's score sees it, since
        each looks only at the words the two texts share. The calibration
        learns how much it weighs on each KB (``Calibration.oov_weight``)."""
        total = sum(q_weights.values())
        if not total:
            return 0.0
        rare = self.features.max_idf - 1e-6
        return sum(w for w in q_weights.values() if w >= rare) / total

    def keyword_hits(self, query_words: str, found: list[Candidate]) -> list[bool]:
        """Which candidates hold every content word of a short question.

        Short: at most ``KEYWORD_MAX_WORDS`` words (jieba's for Chinese). Content
        words: the question's words but the question words and function words
        of ``FUNCTION_WORDS`` (怎么, 如何, how, can...); there must be one.
        A candidate holds a word when any of its entry's questions has it, so
        怎么支付 finds the entry whose questions say 可以微信支付吗 even if its
        best-matching question is 怎么付款. A word no question has (天气 on a
        shop's KB) is held by no entry: such questions stay unrecognised.
        """
        words = query_words.split()
        content = {w for w in words if w not in FUNCTION_WORDS}
        if not content or len(words) > KEYWORD_MAX_WORDS:
            return [False] * len(found)
        hits = []
        for cand in found:
            owner = self.by_id.get(cand.entry_id)
            held: set[str] = set()
            if owner is not None:
                for v in self.rows_of[owner].tolist():
                    held.update(self.words_of(self.texts[v]).split())
                    if content <= held:
                        break
            hits.append(content <= held)
        return hits


#: A question of at most this many words is a topic ("退款", "怎么支付",
#: "refund status"): entries holding all its content words are suggested at least.
KEYWORD_MAX_WORDS = 3
#: Words that ask rather than say what about (Chinese after jieba, English after
#: ``normalize``), left out of a short question's content words.
FUNCTION_WORDS = frozenset(
    "怎么 怎样 怎么样 怎么办 怎么回事 如何 什么 为什么 为啥 哪 哪些 哪里 哪儿 哪个 在哪 在哪里 谁 几 "
    "多久 多少 几天 "
    "能 能不能 可以 可不可以 是否 有没有 有 是 不 没 我 我的 我们 你 你们 您 要 想 吗 呢 吧 了 的 "
    "呀 啊 么 还 会 该 去 在 办 弄 一下 "
    "how what why where when which who can could do does did is are was i my me we our "
    "you your to the a an of for in on at it is be get".split())
#: Per candidate: combined cosine, classifier decision, fuzz ratio, word
#: token-set ratio, exact match, cosine over the character blocks and over the
#: word blocks, idf-weighted share of the question's words the candidate has
#: (cov_q) and of the candidate's words the question has (cov_c), and the
#: character-set agreement of ``_char_overlap`` ...
BASE_FEATURES = ("cos", "clf", "fuzz", "tset", "exact", "c_chr", "c_wrd", "cov_q", "cov_c",
                 "len_r", "jac", "part", "q_miss", "c_miss")
#: ... and each one's margin to the best *other* candidate ("m_" + name): how
#: much better this entry is than its nearest rival is what tells paraphrases
#: from near-misses, and what a pointwise logistic model cannot see otherwise.
FEATURES = BASE_FEATURES + tuple("m_" + name for name in BASE_FEATURES)


def _char_overlap(norm: str, q_chars: set[str], text: str) -> dict[str, float]:
    """Character-level agreement of the question and a variant: length ratio,
    Jaccard of their character sets, rapidfuzz partial ratio, and the share of
    each one's characters the other lacks (one different character is often
    the whole difference between a paraphrase and another question)."""
    c_chars = set(text.replace(" ", ""))
    common = len(q_chars & c_chars)
    longest = max(len(norm), len(text), 1)
    return {
        "len_r": min(len(norm), len(text)) / longest,
        "jac": common / max(len(q_chars | c_chars), 1),
        "part": fuzz.partial_ratio(norm, text) / 100.0,
        "q_miss": 1.0 - common / max(len(q_chars), 1),
        "c_miss": 1.0 - common / max(len(c_chars), 1),
    }


def _coverage(a: dict[str, float], b: dict[str, float]) -> float:
    """Share of ``a``'s word weight (idf) that ``b`` has too."""
    total = sum(a.values())
    return sum(w for word, w in a.items() if word in b) / total if total else 0.0


def _score(feats: dict[str, float], weights: dict[str, float]) -> float:
    z = weights["bias"] + sum(weights.get(name, 0.0) * feats[name] for name in FEATURES)
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


def decide(candidates: list[Candidate],
           answer_threshold: float = DEFAULT_ANSWER_THRESHOLD,
           suggest_threshold: float = DEFAULT_SUGGEST_THRESHOLD) -> Decision:
    """Answer, suggest ("did you mean") or declare the question unrecognised."""
    if not candidates or candidates[0].score < suggest_threshold:
        return Decision("unrecognised", [])
    if candidates[0].score >= answer_threshold:
        return Decision("answer", candidates[:1])
    return Decision("suggest", [c for c in candidates if c.score >= suggest_threshold][:3])


#: Calibration threads of this process. A daemon thread still inside NumPy or
#: scikit-learn when the interpreter exits aborts the process ("terminate called
#: without an active exception", exit -6: a `meiqia kb reindex` that had just
#: built its index), so the process waits for them at exit, a bounded while.
_CALIBRATORS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
CALIBRATION_EXIT_WAIT = 120.0


@atexit.register
def _wait_for_calibrations() -> None:
    deadline = time.monotonic() + CALIBRATION_EXIT_WAIT
    for thread in list(_CALIBRATORS):
        thread.join(max(0.0, deadline - time.monotonic()))


#: A rival candidate this close in n-grams holds the same words as the question too:
#: an exact question is then no one entry's (``KBIndex.calibration_of``).
EXACT_COS = 0.9999


class KBIndex:
    """A thread-safe index over KB entries; see the module docstring.

    Queries read one immutable state; edits build a new state and swap the
    reference under a lock, so a query never sees half an edit.
    """

    def __init__(self, entries: list[KBEntry] | None = None,
                 use_classifier: bool | None = None,
                 background_rebuild: bool = True,
                 progress: Progress | None = None,
                 lexicon: Lexicon | None = None,
                 calibration: Calibration | None = None) -> None:
        """Build the index; ``progress(fraction, message)`` hears how far it is
        (a large build takes seconds: the reindex job shows it). ``lexicon``:
        the team's synonyms and product words (``meiqia.bot.lexicon``)."""
        self._use_classifier = use_classifier
        self.lexicon = lexicon or EMPTY
        self._background = background_rebuild
        self._lock = threading.Lock()
        self._entries: dict[str, KBEntry] = {e.id: e for e in entries or []}
        self._state = _State(list(self._entries.values()), use_classifier,
                             progress or _no_progress, self.lexicon)
        self._state.warm_up()
        #: Where this index answers and suggests (meiqia.bot.calibrate); the
        #: default scale until ``calibrate`` has measured it.
        self.calibration: Calibration = calibration or DEFAULT_CALIBRATION
        #: True while a background calibration runs, and how far it is.
        self.calibrating = False
        self.calibration_progress: tuple[float, str] = (0.0, "")
        self._calibrator: threading.Thread | None = None
        #: Bumped by every edit; a background rebuild only lands if it is unchanged.
        self._generation = 0
        self._rebuilder: threading.Thread | None = None
        self._stale = False

    def __getstate__(self) -> dict[str, Any]:
        """Picklable without its lock and threads (``meiqia.bot.cache``)."""
        state = dict(self.__dict__)
        for name in ("_lock", "_rebuilder", "_calibrator"):
            state.pop(name, None)
        state["calibrating"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._rebuilder = None
        self._calibrator = None

    def __len__(self) -> int:
        return len(self._state.entries)

    @property
    def variant_count(self) -> int:
        return int((self._state.owners >= 0).sum())

    def query(self, text: str, k: int = 5) -> list[Candidate]:
        """The best ``k`` entries for ``text``, best first, each with its score
        on the calibrated scale (answer at 0.7, suggest at 0.5 by default)."""
        found = self._state.query(text, max(k, 2))
        return self.calibration_of(found)[:k]

    def raw_query(self, text: str, k: int = 5) -> list[Candidate]:
        """``query`` with the raw scores of the logistic model (for calibration)."""
        return self._state.query(text, k)

    def calibration_of(self, found: list[Candidate]) -> list[Candidate]:
        """Rescale raw candidates (best first) with this index's calibration;
        the raw score and the margin stay in ``features``.

        A candidate that holds every content word of a short question
        (``features["keyword"]``, see ``_State.keyword_hits``) is put at least
        at the suggest point: "怎么支付" or "退款" is a topic, not a
        question, and the right reply is "did you mean" with the entries on
        that topic, not "not recognised"."""
        calibration = self.calibration
        if not calibration.calibrated and found:
            # Not measured (yet, or too small a KB): the development sets' points
            # of the model that scored this question.
            calibration = DEFAULT_BY_MODEL[MODELS[int(found[0].features.get("model", 1))]]
        for i, cand in enumerate(found):
            rival = found[1].score if i == 0 and len(found) > 1 else (
                found[0].score if i else 0.0)
            margin = cand.score - rival
            cand.features["raw"] = cand.score
            cand.features["margin"] = margin
            # The question's share of words the KB lacks lowers every candidate
            # alike below the answer point: it moves the cut to unrecognised.
            cand.score = calibration.rescale(cand.score, margin, cand.features.get("oov", 0.0))
            if cand.features.get("keyword"):
                cand.score = max(cand.score, SUGGEST_POINT)
        if found and found[0].features.get("exact") and not any(
                c.features.get("cos", 0.0) >= EXACT_COS for c in found[1:]):
            # The visitor typed one of the entry's own questions (as normalised), and
            # no other entry holds the same words: that is the team's answer to it,
            # whatever the calibration of the KB could promise for paraphrases (an
            # outside check saw exact questions only "suggested" on a KB whose
            # calibration could not reach its target).
            found[0].score = max(found[0].score, ANSWER_POINT)
        found.sort(key=lambda c: -c.score)  # stable: lifted ones keep their order
        return found

    def calibrate(self, target: float = DEFAULT_TARGET,
                  progress: Progress | None = None) -> Calibration:
        """Measure this index on held-out questions of its own entries and
        set its thresholds (meiqia.bot.calibrate); returns the result."""
        entries = list(self._state.entries)
        result = calibrate_kb(
            entries, lambda kept: KBIndex(kept, self._use_classifier, background_rebuild=False,
                                          lexicon=self.lexicon),
            target=target, progress=progress)
        self.calibration = result
        return result

    def calibrate_in_background(self, target: float = DEFAULT_TARGET,
                                on_done: Callable[[Calibration], None] | None = None
                                ) -> threading.Thread:
        """``calibrate`` in a daemon thread; the index answers with the scale
        it had (the previous index's, or the default) until it is done."""
        def heard(fraction: float, message: str) -> None:
            self.calibration_progress = (fraction, message)

        def run() -> None:
            try:
                result = self.calibrate(target, progress=heard)
                if on_done is not None:
                    on_done(result)
            finally:
                self.calibrating = False

        self.calibrating = True
        self.calibration_progress = (0.0, "starting")
        thread = threading.Thread(target=run, name="kb-index-calibrate", daemon=True)
        self._calibrator = thread
        _CALIBRATORS.add(thread)
        thread.start()
        return thread

    def wait_calibrated(self, timeout: float | None = None) -> bool:
        """Wait for a background calibration; True when none is running."""
        thread = self._calibrator
        if thread is not None:
            thread.join(timeout)
        return not self.calibrating

    def decide(self, candidates: list[Candidate],
               answer_threshold: float = DEFAULT_ANSWER_THRESHOLD,
               suggest_threshold: float = DEFAULT_SUGGEST_THRESHOLD) -> Decision:
        """Answer, suggest ("did you mean") or declare the question unrecognised."""
        return decide(candidates, answer_threshold, suggest_threshold)

    def upsert(self, entry: KBEntry) -> None:
        """Add or replace one entry; visible to the next query."""
        self._edit({entry.id: entry})

    def remove(self, entry_id: str) -> None:
        """Remove one entry (no error if it is not there); visible to the next query."""
        self._edit({entry_id: None})

    def apply(self, changes: dict[str, KBEntry | None]) -> None:
        """Several upserts (an entry) and removes (None) as one edit.

        One refit (small KBs) or one patch (large ones) for the lot, which is
        how a process catches up with the edits other processes made.
        """
        if changes:
            self._edit(dict(changes))

    def _edit(self, changes: dict[str, KBEntry | None]) -> None:
        with self._lock:
            entries = dict(self._entries)
            for key, entry in changes.items():
                if entry is None:
                    entries.pop(key, None)
                else:
                    entries[key] = entry
            current = self._state
            if len(current.texts) <= INCREMENTAL_ABOVE_VARIANTS or current.by_feature is None:
                state = _State(list(entries.values()), self._use_classifier,
                               lexicon=self.lexicon)
            else:
                state = current.patched(changes)
                self._stale = True
            self._entries, self._state = entries, state
            self._generation += 1
            if self._stale and self._background and (
                self._rebuilder is None or not self._rebuilder.is_alive()
            ):
                self._rebuilder = threading.Thread(
                    target=self._rebuild_loop, name="kb-index-rebuild", daemon=True)
                self._rebuilder.start()

    def rebuild(self) -> None:
        """Refit everything (vocabulary, idf, classifier) from the current entries."""
        while True:
            with self._lock:
                generation = self._generation
                entries = list(self._entries.values())
            state = _State(entries, self._use_classifier,  # slow part, lock not held
                           lexicon=self.lexicon)
            with self._lock:
                if generation == self._generation:
                    self._state = state
                    self._stale = False
                    return
            # An edit came in meanwhile: build again, but drop this one first
            # (kept until the next build was assigned, it was a third index in
            # memory beside the answering one and the next build).
            del state

    def _rebuild_loop(self) -> None:
        self.rebuild()

    def wait_rebuilt(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild; True when the index is fully fitted."""
        thread = self._rebuilder
        if thread is not None:
            thread.join(timeout)
        return not self._stale
