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
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def model_text(subject: str, reply_text: str) -> str:
    """The string the model reads: the subject (empty for replies: a reply's subject repeats our outreach)
    and the new reply text, lowercased, digits folded to 0, URLs and addresses replaced by a token, followed
    by the concept tokens of :mod:`.lexicon`."""
    text = f"{subject}\n{reply_text}"[:MODEL_TEXT_CAP].replace("İ", "i").lower()
    text = _URL.sub(" url ", text)
    text = _EMAIL.sub(" email ", text)
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
class TrainedModel:
    """Vectorizer plus category and language heads, with the card written next to the artifact."""

    vectorizer: TfidfVectorizer
    category_head: LogisticRegression
    language_head: LogisticRegression
    card: dict[str, Any]

    def predict(self, text: str) -> tuple[str, float, str, float]:
        """``(category, probability, language, probability)`` for one :func:`model_text` string."""
        x = self.vectorizer.transform([text])
        cat_p = self.category_head.predict_proba(x)[0]
        lang_p = self.language_head.predict_proba(x)[0]
        ci = int(cat_p.argmax())
        li = int(lang_p.argmax())
        return (
            str(self.category_head.classes_[ci]),
            float(cat_p[ci]),
            str(self.language_head.classes_[li]),
            float(lang_p[li]),
        )

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
