"""Measure the whole classifier (rules + model) on the held-out split, and on real mail when it is present.

Run: ``uv run python -m laifaxin_classifier.evaluate [--real-mail DIR]``. Prints per-class precision, recall
and F1, macro-F1, the confusion matrix, a per-language breakdown, and OOO / bounce recall on the public real
messages in ``../shared/data/real-mail`` (read in place, never copied). How those messages are labelled is
printed with the figures (:func:`real_mail_labels`).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from .classify import _classify, model_threshold
from .datagen import DEFAULT_OUT, Row, read_jsonl
from .message import ClassifierInput
from .model import DEFAULT_ARTIFACT, TrainedModel, load_model
from .train import row_input

CLASSES = ["to_reply", "ooo", "inquiry", "rejection", "bounce", "notification"]
REPO_ROOT = Path(__file__).resolve().parents[4]
REAL_MAIL = REPO_ROOT.parent / "shared" / "data" / "real-mail"


def evaluate_rows(rows: list[Row], model: TrainedModel) -> dict[str, Any]:
    """Classify every row with the full pipeline; per-class, macro and per-language figures."""
    version = str(model.card.get("version", "clf-v1"))
    y_true = [r.label for r in rows]
    threshold = model_threshold(model)
    y_pred = [_classify(row_input(r), model, version, threshold).category for r in rows]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    per_lang: dict[str, dict[str, float]] = {}
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_lang[row.language].append(i)
    for lang, idx in sorted(by_lang.items()):
        t = [y_true[i] for i in idx]
        q = [y_pred[i] for i in idx]
        per_lang[lang] = {
            "n": len(idx),
            "accuracy": round(sum(a == b for a, b in zip(t, q, strict=True)) / len(idx), 4),
            "macro_f1": round(
                float(f1_score(t, q, labels=sorted(set(t)), average="macro", zero_division=0)), 4
            ),
        }
    return {
        "n": len(rows),
        "accuracy": round(sum(a == b for a, b in zip(y_true, y_pred, strict=True)) / max(1, len(rows)), 4),
        "macro_f1": round(
            float(f1_score(y_true, y_pred, labels=CLASSES, average="macro", zero_division=0)), 4
        ),
        "precision": {c: round(float(v), 4) for c, v in zip(CLASSES, p, strict=True)},
        "recall": {c: round(float(v), 4) for c, v in zip(CLASSES, r, strict=True)},
        "f1": {c: round(float(v), 4) for c, v in zip(CLASSES, f, strict=True)},
        "support": {c: int(v) for c, v in zip(CLASSES, s, strict=True)},
        "confusion": confusion_matrix(y_true, y_pred, labels=CLASSES).tolist(),
        "per_language": per_lang,
        "errors": [(rows[i].id, y_true[i], y_pred[i]) for i in range(len(rows)) if y_true[i] != y_pred[i]],
    }


PROBES = (
    (
        "probe.jsonl",
        "hand-written complete replies; its errors were seen before the second data round, so it "
        "is no longer untouched",
    ),
    (
        "probe2.jsonl",
        "hand-written after the second data round, committed before it was first scored, never "
        "used for any choice",
    ),
)
"""Small hand-written sets outside the generator, measured as they are."""

ALAVETELI_BY_HAND: dict[str, tuple[set[str], str]] = {
    "empty-return-path.eml": ({"bounce"}, "alaveteli-bounce"),  # "Mail delivery failed", Mail Delivery System
    "humberside-police-odd-mime-type.eml": ({"bounce"}, "alaveteli-bounce"),  # same, Exim
    "utf-7-conversion.eml": ({"bounce"}, "alaveteli-bounce"),  # "Delivery Status Notification (Failure)"
    "multipart-no-final-boundary.eml": ({"ooo", "to_reply"}, "alaveteli-human"),  # "an acknowledgement email"
    "iso8859_1_with_extended_character_set.eml": ({"ooo", "to_reply"}, "alaveteli-human"),  # idem
}
"""Alaveteli fixtures whose file name does not say what they are, labelled by reading them."""


def real_mail_labels(root: Path) -> list[tuple[Path, set[str], str]]:
    """``(file, accepted categories, group name)`` for the public real messages under ``root``.

    Labelling, from each corpus's README and file names:
    - sisimai/maildir/bsd ``rfc3834-*.eml``: auto-replies -> ``ooo``;
    - sisimai/maildir/bsd ``arf-*.eml``: ARF feedback (abuse) reports, RFC 5965, not delivery failures ->
      ``notification``, counted apart; Amazon SES notifications whose JSON says "notificationType":"Delivery"
      or "Complaint" -> ``notification`` (successful deliveries and complaints are not bounces);
    - every other sisimai/maildir/bsd file: a bounce (the corpus is Sisimai's bounce test set) -> ``bounce``;
    - alaveteli ``track-response-*oof*.eml``: out-of-office -> ``ooo``; ``track-response-*bounce*.eml`` and
      ``track-response-multipart-report.eml``: bounces -> ``bounce``; ``autoresponse-header.eml`` is a
      "Mail delivery failed" sent with Auto-Submitted: auto-replied -> ``bounce`` or ``ooo``;
    - alaveteli files read by hand (:data:`ALAVETELI_BY_HAND`): three more delivery failures under MIME-test
      names, and two auto-acknowledgements ("This is an acknowledgement of your email") -> ``ooo`` or
      ``to_reply``;
    - sisimai/maildir/not: Sisimai's "not a bounce" set. ``rb-issue-368-bug.eml`` says "an email you sent was
      rejected" from postmaster@, so ``bounce``, ``ooo`` or ``notification`` are accepted for it; the other two
      are people's mail;
    - the other alaveteli messages and all email_reply_parser ones are written by people -> anything but
      ``ooo`` and ``bounce`` (they measure false alarms, not recall).
    """
    out: list[tuple[Path, set[str], str]] = []
    bsd = root / "sisimai" / "maildir" / "bsd"
    for f in sorted(bsd.glob("*.eml")):
        if f.name.startswith("rfc3834-"):
            out.append((f, {"ooo"}, "sisimai-rfc3834-ooo"))
        elif f.name.startswith("arf-"):
            out.append((f, {"notification"}, "sisimai-arf-feedback"))
        elif (
            b'"notificationType":"Delivery"' in f.read_bytes()
            or b'"notificationType":"Complaint"' in f.read_bytes()
        ):
            out.append((f, {"notification"}, "sisimai-ses-notification"))
        else:
            out.append((f, {"bounce"}, "sisimai-bounce"))
    human = {"to_reply", "inquiry", "rejection", "notification"}
    for f in sorted((root / "sisimai" / "maildir" / "not").glob("*.eml")):
        accepted = {"bounce", "ooo", "notification"} if f.name == "rb-issue-368-bug.eml" else human
        out.append((f, accepted, "sisimai-not-bounce"))
    for f in sorted((root / "alaveteli").glob("*.eml")):
        if f.name.startswith("track-response-") and "oof" in f.name:
            out.append((f, {"ooo"}, "alaveteli-ooo"))
        elif f.name.startswith("track-response-"):
            out.append((f, {"bounce"}, "alaveteli-bounce"))
        elif f.name == "autoresponse-header.eml":
            out.append((f, {"bounce", "ooo"}, "alaveteli-bounce"))
        elif f.name in ALAVETELI_BY_HAND:
            accepted, group = ALAVETELI_BY_HAND[f.name]
            out.append((f, accepted, group))
        else:
            out.append((f, human, "alaveteli-human"))
    for f in sorted((root / "email_reply_parser").glob("*.txt")):
        out.append((f, human, "email-reply-parser-human"))
    return out


def _plain_text_input(raw: bytes) -> ClassifierInput:
    """email_reply_parser fixtures are bare bodies, not RFC 5322 messages."""
    return ClassifierInput(text=raw.decode("utf-8", "replace").replace("\r\n", "\n"))


def evaluate_real_mail(root: Path, model: TrainedModel) -> dict[str, Any]:
    """Per group: count, hits (category in the accepted set), and the misses with their category."""
    version = str(model.card.get("version", "clf-v1"))
    groups: dict[str, dict[str, Any]] = {}
    for path, accepted, group in real_mail_labels(root):
        raw = path.read_bytes()
        msg = _plain_text_input(raw) if path.suffix == ".txt" else ClassifierInput.from_bytes(raw)
        c = _classify(msg, model, version, model_threshold(model))
        g = groups.setdefault(group, {"n": 0, "hits": 0, "misses": [], "categories": Counter()})
        g["n"] += 1
        g["categories"][c.category] += 1
        if c.category in accepted:
            g["hits"] += 1
        else:
            g["misses"].append(f"{path.name}: {c.category} {c.reasons}")
    return groups


def _print_report(rep: dict[str, Any], per_language: bool = True) -> None:
    print(f"{rep['n']} messages, accuracy {rep['accuracy']:.4f}, macro-F1 {rep['macro_f1']:.4f}")
    print(f"{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for c in CLASSES:
        print(
            f"{c:<14}{rep['precision'][c]:>10.4f}{rep['recall'][c]:>10.4f}{rep['f1'][c]:>10.4f}{rep['support'][c]:>10}"
        )
    print("\nconfusion matrix (rows = true, columns = predicted):")
    print(" " * 14 + "".join(f"{c[:11]:>12}" for c in CLASSES))
    for c, row in zip(CLASSES, rep["confusion"], strict=True):
        print(f"{c:<14}" + "".join(f"{v:>12}" for v in row))
    if not per_language:
        return
    print("\nper language:")
    print(f"{'language':<10}{'n':>6}{'accuracy':>10}{'macro-F1':>10}")
    for lang, v in rep["per_language"].items():
        print(f"{lang:<10}{v['n']:>6}{v['accuracy']:>10.4f}{v['macro_f1']:>10.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate the reply classifier.")
    parser.add_argument("--data", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--model", type=Path, default=DEFAULT_ARTIFACT)
    parser.add_argument("--real-mail", type=Path, default=REAL_MAIL)
    parser.add_argument("--errors", action="store_true", help="list every misclassified row and message")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    rows = [r for r in read_jsonl(args.data) if r.split == "test"]
    rep = evaluate_rows(rows, model)
    print(f"held-out split ({args.data.name}, split=test, phrase groups never trained on):")
    _print_report(rep)
    if args.errors:
        for e in rep["errors"]:
            print("  miss:", *e)
    for name, note in PROBES:
        probe_path = args.data.with_name(name)
        if not probe_path.exists():
            continue
        probe = evaluate_rows(read_jsonl(probe_path), model)
        print(f"\nprobe set {name} ({note}):")
        _print_report(probe, per_language=False)
        if args.errors:
            for e in probe["errors"]:
                print("  miss:", *e)
    if not args.real_mail.is_dir():
        print(f"\nreal mail: {args.real_mail} not present, skipped")
        return 0
    print(f"\nreal mail ({args.real_mail}, read in place):")
    print(
        "how they are labelled"
        + textwrap.dedent((real_mail_labels.__doc__ or "").split("Labelling")[1]).rstrip()
    )
    groups = evaluate_real_mail(args.real_mail, model)
    for name, g in sorted(groups.items()):
        cats = ", ".join(f"{k}={v}" for k, v in g["categories"].most_common())
        print(f"  {name:<26} {g['hits']:>4}/{g['n']:<4} = {g['hits'] / g['n']:.4f}  ({cats})")
        if args.errors:
            for m in g["misses"]:
                print("      miss:", m)
    ooo = [g for n, g in groups.items() if n in ("alaveteli-ooo", "sisimai-rfc3834-ooo")]
    bounce = [g for n, g in groups.items() if n in ("alaveteli-bounce", "sisimai-bounce")]
    for label, gs in (("OOO recall", ooo), ("bounce recall", bounce)):
        n = sum(g["n"] for g in gs)
        hits = sum(g["hits"] for g in gs)
        if n:
            print(f"real-mail {label}: {hits}/{n} = {hits / n:.4f}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
