"""Train the model artifact from ``services/classifier/data/replies.jsonl``.

Run: ``uv run python -m laifaxin_classifier.train`` (deterministic: fixed seed, single thread; a few seconds).
Writes ``models/clf-v1.joblib`` and ``models/clf-v1.json`` (version, training-data SHA-256, sizes, the
confidence threshold chosen on a phrase-group validation split of the training rows, held-out metrics of the
whole classifier). Only the ``train`` split is fitted or used for choices; ``evaluate`` reads ``test``.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sklearn.model_selection import GroupShuffleSplit

from .datagen import DEFAULT_OUT, Row, read_jsonl
from .message import ClassifierInput
from .model import DEFAULT_ARTIFACT, MODEL_VERSION, TrainedModel, make_head, make_vectorizer, model_text
from .reply import extract_reply, strip_subject_prefixes

SEED = 20261121


def row_input(row: Row) -> ClassifierInput:
    """The :class:`ClassifierInput` a data row stands for (as sync would publish it)."""
    return ClassifierInput(
        subject=row.subject,
        from_addr=row.from_addr,
        from_name=row.from_name,
        headers=dict(row.headers),
        text=row.text,
    )


def row_model_text(row: Row) -> str:
    """What the model reads for a row: the same path as :func:`laifaxin_classifier.classify.classify`."""
    subject, is_reply = strip_subject_prefixes(row.subject)
    return model_text("" if is_reply else subject, extract_reply(row.text))


def data_hash(path: Path) -> str:
    """SHA-256 hex of the training file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fit(rows: list[Row], seed: int = SEED) -> TrainedModel:
    """Fit vectorizer, category head and language head on ``rows`` (all of them: pass the train split)."""
    texts = [row_model_text(r) for r in rows]
    vec = make_vectorizer()
    x = vec.fit_transform(texts)
    cat = make_head(seed).fit(x, [r.label for r in rows])
    lang = make_head(seed).fit(x, [r.language for r in rows])
    return TrainedModel(vec, cat, lang, card={})


THRESHOLD_CANDIDATES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def choose_threshold(rows: list[Row], seed: int = SEED) -> tuple[float, dict[str, float]]:
    """The model-confidence threshold with the best macro-F1 of the whole classifier on a validation quarter
    of ``rows`` split off by phrase group (``GroupShuffleSplit``), after fitting on the other three quarters.
    Ties go to the higher threshold (more messages left to a person). The test split is never used."""
    from sklearn.metrics import f1_score

    from .classify import _classify

    splitter = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
    fit_idx, val_idx = next(splitter.split(rows, groups=[r.group for r in rows]))
    model = fit([rows[i] for i in fit_idx], seed)
    val = [rows[i] for i in val_idx]
    truth = [r.label for r in val]
    scores: dict[str, float] = {}
    for t in THRESHOLD_CANDIDATES:
        pred = [_classify(row_input(r), model, "val", t).category for r in val]
        scores[str(t)] = round(float(f1_score(truth, pred, average="macro")), 4)
    best = max(THRESHOLD_CANDIDATES, key=lambda t: (scores[str(t)], t))
    return best, scores


def train(data: Path = DEFAULT_OUT, out: Path = DEFAULT_ARTIFACT, seed: int = SEED) -> dict[str, Any]:
    """Train on the train split of ``data``, evaluate on its test split, write the artifact; returns the card."""
    from .evaluate import evaluate_rows  # late import: evaluate imports this module's helpers

    t0 = time.perf_counter()
    rows = read_jsonl(data)
    train_rows = [r for r in rows if r.split == "train"]
    test_rows = [r for r in rows if r.split == "test"]
    threshold, val_scores = choose_threshold(train_rows, seed)
    model = fit(train_rows, seed)
    fit_s = time.perf_counter() - t0
    model.card = {
        "version": MODEL_VERSION,
        "trained_with": "TfidfVectorizer(char_wb, 1-4) + LogisticRegression (category, language)",
        "seed": seed,
        "data_file": data.name,
        "data_sha256": data_hash(data),
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "train_labels": dict(sorted(Counter(r.label for r in train_rows).items())),
        "features": len(model.vectorizer.vocabulary_),
        "fit_seconds": round(fit_s, 2),
        "threshold": threshold,
        "threshold_validation_macro_f1": val_scores,
    }
    report = evaluate_rows(test_rows, model)
    model.card["heldout"] = {
        "macro_f1": report["macro_f1"],
        "recall": report["recall"],
        "accuracy": report["accuracy"],
    }
    model.save(out)
    return model.card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the reply classifier artifact.")
    parser.add_argument("--data", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--out", type=Path, default=DEFAULT_ARTIFACT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    card = train(args.data, args.out, args.seed)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB), {card['features']} features, fit {card['fit_seconds']} s")
    print(f"held-out macro-F1 {card['heldout']['macro_f1']:.4f}; recall {card['heldout']['recall']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
