"""The trained part: character n-gram TF-IDF with two linear heads (category and language).

One :class:`~sklearn.feature_extraction.text.TfidfVectorizer` (``char_wb`` 1-4 grams, so Chinese and Japanese
need no word segmentation) feeds a :class:`~sklearn.linear_model.LogisticRegression` for the category and a
second one for the language of the reply; the artifact is one joblib file plus a JSON card
(``models/clf-v1.joblib``, ``models/clf-v1.json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .lexicon import concept_tokens

MODEL_VERSION = "clf-v1"
MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_ARTIFACT = MODELS_DIR / f"{MODEL_VERSION}.joblib"
MODEL_TEXT_CAP = 2000
"""Characters of subject + reply text fed to the model (a reply's intent is at its top)."""

_DIGITS = re.compile(r"\d")
_URL = re.compile(r"https?://\S+|www\.\S+")
_EMAIL_OR_RUN = re.compile(r"[\w.+-]++(?:@[\w-]+(?:\.[\w-]+)+)?")
r"""An address, or a run of address characters that is not one (kept as it is). The possessive run is read once:
``[\w.+-]+@`` searched over a long run without ``@`` would rescan the run from each of its characters."""


def _mask_address(m: re.Match[str]) -> str:
    return " email " if "@" in m.group() else m.group()


def model_text(subject: str, reply_text: str) -> str:
    """The string the model reads: the subject (empty for replies: a reply's subject repeats our outreach)
    and the new reply text, lowercased, digits folded to 0, URLs and addresses replaced by a token, followed
    by the concept tokens of :mod:`.lexicon`."""
    text = f"{subject}\n{reply_text}"[:MODEL_TEXT_CAP].replace("İ", "i").lower()
    text = _URL.sub(" url ", text)
    if "@" in text:
        text = _EMAIL_OR_RUN.sub(_mask_address, text)
    return _DIGITS.sub("0", text) + concept_tokens(text)


def make_vectorizer() -> TfidfVectorizer:
    """The feature extractor used in training (fixed settings so a retrain is comparable)."""
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(1, 4),
        min_df=2,
        max_features=120_000,
        sublinear_tf=True,
        dtype=np.float32,
    )


def make_head(seed: int) -> LogisticRegression:
    """A linear head; ``C`` chosen on the training split only (see train.py)."""
    return LogisticRegression(C=20.0, max_iter=2000, random_state=seed)


@dataclass
class _Head:
    """A fitted multinomial logistic regression as plain arrays: ``softmax(x @ weights + bias)``."""

    classes: list[str]
    weights: np.ndarray  # (n_features, n_classes), float64
    bias: np.ndarray  # (n_classes,)

    @classmethod
    def of(cls, lr: LogisticRegression) -> _Head:
        if lr.coef_.shape[0] < 3:
            raise ValueError("expected a multinomial head with three or more classes")
        return cls(
            [str(c) for c in lr.classes_],
            np.ascontiguousarray(lr.coef_.T, dtype=np.float64),
            lr.intercept_.astype(np.float64),
        )

    def best(self, idx: np.ndarray, val: np.ndarray) -> tuple[str, float]:
        z = val @ self.weights[idx] + self.bias
        z = np.exp(z - z.max())
        p = z / z.sum()
        i = int(p.argmax())
        return self.classes[i], float(p[i])


@dataclass
class TrainedModel:
    """Vectorizer plus category and language heads, with the card written next to the artifact.

    :meth:`predict` computes exactly what ``vectorizer.transform`` + ``predict_proba`` compute (char n-gram
    counts, sublinear tf, idf, L2 norm, softmax of the linear scores; a unit test checks the equality), on
    plain NumPy arrays: scikit-learn's per-call input validation costs more than the arithmetic for one short
    message.
    """

    vectorizer: TfidfVectorizer
    category_head: LogisticRegression
    language_head: LogisticRegression
    card: dict[str, Any]

    def __post_init__(self) -> None:
        self._analyze = self.vectorizer.build_analyzer()
        self._vocab: dict[str, int] = self.vectorizer.vocabulary_
        self._idf = self.vectorizer.idf_.astype(np.float64)
        self._sublinear = bool(self.vectorizer.sublinear_tf)
        self._cat = _Head.of(self.category_head)
        self._lang = _Head.of(self.language_head)

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(feature indices, tf-idf values)`` of one :func:`model_text` string (L2-normalised)."""
        counts: dict[int, int] = {}
        vocab = self._vocab
        for gram in self._analyze(text):
            j = vocab.get(gram)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        idx = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        if self._sublinear:
            tf = np.log(tf) + 1.0
        val = tf * self._idf[idx]
        return idx, val / np.sqrt(val @ val)

    def predict(self, text: str) -> tuple[str, float, str, float]:
        """``(category, probability, language, probability)`` for one :func:`model_text` string."""
        idx, val = self.features(text)
        category, p = self._cat.best(idx, val)
        language, q = self._lang.best(idx, val)
        return category, p, language, q

    def save(self, path: Path) -> None:
        """Write ``path`` (joblib, compressed) and ``path.with_suffix('.json')`` (the card)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {"vectorizer": self.vectorizer, "category": self.category_head, "language": self.language_head},
            path,
            compress=3,
        )
        path.with_suffix(".json").write_text(json.dumps(self.card, indent=2, ensure_ascii=False) + "\n")


def load_model(path: Path = DEFAULT_ARTIFACT) -> TrainedModel:
    """Load an artifact written by :meth:`TrainedModel.save`.

    Raises ``FileNotFoundError`` when it is missing (run ``python -m laifaxin_classifier.train``) and
    ``ValueError`` when the file is not a model of this shape. Only load artifacts built from this
    repository: joblib unpickles.
    """
    blob = joblib.load(path)
    if not isinstance(blob, dict) or not {"vectorizer", "category", "language"} <= blob.keys():
        raise ValueError(f"{path} is not a laifaxin classifier artifact")
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return TrainedModel(blob["vectorizer"], blob["category"], blob["language"], card)
