"""Group unrecognised questions by similarity, so admins see topics, not noise.

Character n-gram TF-IDF (no word segmentation: Chinese works) and
average-linkage agglomerative clustering with a cosine distance cut-off: two
questions end up together when they share enough n-grams, however many groups
that makes. Groups come back largest first.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import TfidfVectorizer

from meiqia.bot.index import ngrams
from meiqia.bot.normalize import normalize

#: Cosine distance under which two questions are "the same topic".
DISTANCE_THRESHOLD = 0.9
#: Most questions clustered at once (quadratic memory in the number of questions).
MAX_QUESTIONS = 3000


def cluster_questions(questions: list[str],
                      distance_threshold: float = DISTANCE_THRESHOLD) -> list[list[int]]:
    """Indices of ``questions`` grouped by topic, largest group first."""
    if not questions:
        return []
    questions = questions[:MAX_QUESTIONS]
    texts = [normalize(q) for q in questions]
    # Questions with no words at all (emoji, punctuation) are each their own group.
    words = [i for i, t in enumerate(texts) if t]
    alone = [[i] for i, t in enumerate(texts) if not t]
    if len(words) < 2:
        return sorted([[i] for i in words] + alone, key=lambda g: g[0])
    # The index's own n-grams: CJK 1-3-grams per run, Latin 2-4-grams per word.
    # (sklearn's char_wb 1-grams include the padding space, which every question
    # shares, and that alone pulled short unrelated questions together.)
    vectorizer = TfidfVectorizer(analyzer=ngrams, sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform([texts[i] for i in words]).toarray()
    except ValueError:
        return [[i] for i in range(len(texts))]
    labels = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average",
        distance_threshold=distance_threshold,
    ).fit_predict(matrix)
    groups: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(int(label), []).append(words[position])
    return sorted([*groups.values(), *alone], key=lambda g: (-len(g), g[0]))


def representative(questions: list[str], members: list[int]) -> int:
    """The member closest to the others: a good standard question for the group."""
    if len(members) <= 2:
        return members[0]
    texts = [normalize(questions[i]) or questions[i] for i in members]
    matrix = TfidfVectorizer(analyzer=ngrams).fit_transform(texts)
    sims = (matrix @ matrix.T).toarray().sum(axis=1)
    return members[int(np.argmax(sims))]
