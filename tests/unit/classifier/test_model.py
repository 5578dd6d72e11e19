"""The model artifact: it loads, its card matches the data, the fast path equals scikit-learn, training is
deterministic."""

from __future__ import annotations

import numpy as np

from laifaxin_classifier.datagen import DEFAULT_OUT, generate, read_jsonl
from laifaxin_classifier.model import DEFAULT_ARTIFACT, MODEL_VERSION, load_model
from laifaxin_classifier.train import data_hash, fit, row_model_text


def test_artifact_loads_and_card_matches_data() -> None:
    model = load_model(DEFAULT_ARTIFACT)
    assert model.card["version"] == MODEL_VERSION
    assert model.card["data_sha256"] == data_hash(DEFAULT_OUT)
    assert set(model.category_head.classes_) == {
        "to_reply",
        "ooo",
        "inquiry",
        "rejection",
        "bounce",
        "notification",
    }
    assert DEFAULT_ARTIFACT.stat().st_size < 5_000_000


def test_fast_path_equals_sklearn() -> None:
    model = load_model(DEFAULT_ARTIFACT)
    rows = read_jsonl()[::97]
    for row in rows:
        text = row_model_text(row)
        x = model.vectorizer.transform([text])
        p_cat = model.category_head.predict_proba(x)[0]
        p_lang = model.language_head.predict_proba(x)[0]
        cat, p, lang, q = model.predict(text)
        assert cat == model.category_head.classes_[p_cat.argmax()]
        assert lang == model.language_head.classes_[p_lang.argmax()]
        assert np.isclose(p, p_cat.max(), atol=1e-5) and np.isclose(q, p_lang.max(), atol=1e-5)


def test_generator_is_deterministic_and_split_by_phrase_group() -> None:
    a, b = generate(seed=7), generate(seed=7)
    assert a == b
    committed = read_jsonl()
    assert [r.id for r in committed] == [r.id for r in generate()]
    train_texts = {r.text for r in committed if r.split == "train"}
    test = [r for r in committed if r.split == "test"]
    assert test and not any(r.text in train_texts for r in test)


def test_training_is_deterministic_on_a_subset() -> None:
    rows = [r for r in read_jsonl() if r.split == "train"][::25]
    m1, m2 = fit(rows, seed=1), fit(rows, seed=1)
    assert m1.vectorizer.vocabulary_ == m2.vectorizer.vocabulary_
    assert np.array_equal(m1.category_head.coef_, m2.category_head.coef_)
    assert np.array_equal(m1.language_head.coef_, m2.language_head.coef_)
