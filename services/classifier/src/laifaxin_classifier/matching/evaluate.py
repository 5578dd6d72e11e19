"""Precision and recall of reply matching on the generated corpus (:mod:`.corpus`), through the service's path.

``uv run python -m laifaxin_classifier.matching.evaluate [--sent N]`` prints, for all cases and again with the
threading headers and reply tokens stripped (heuristic and DSN only), ``precision``, ``recall`` and the counts,
by method and by style, then one JSON line. Precision: matched cases whose sent message is the labelled one,
over matched cases; recall: correctly matched over cases labelled with a sent message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from typing import Any

from laifaxin_shared.replytoken import ReplyTokens

from .cli import DEV_REPLY_TOKEN_KEYS, received_event
from .corpus import SYSTEM_TENANT, Corpus, generate, strip_threading
from .matcher import Matcher
from .pipeline import ReplyMatching
from .registry import MemoryRegistry


async def score(corpus: Corpus, tokens: ReplyTokens, *, stripped: bool = False) -> dict[str, Any]:
    """Match every case of ``corpus`` (classified by the real classifier) and count."""
    from ..classify import Classifier, to_mail_classified
    from ..message import ClassifierInput

    registry = MemoryRegistry()
    matching = ReplyMatching(registry, Matcher(registry, tokens, system_tenant_id=SYSTEM_TENANT))
    await matching.on_sent(corpus.sent)
    classifier = Classifier()
    tp = fp = fn = tn = 0
    wrong: list[str] = []
    methods: Counter[str] = Counter()
    for uid, case in enumerate(corpus.cases, 1):
        raw = strip_threading(case.raw) if stripped else case.raw
        ev = received_event(
            raw, tenant_id=case.mailbox.tenant_id, mailbox_id=case.mailbox.mailbox_id, uid=uid
        )
        assert ev is not None, case.name
        classified = to_mail_classified(ev, classifier.classify(ClassifierInput.from_event(ev)))
        match = (await matching.on_classified([(ev, classified)])).classified[0].match
        got = match.sent_message_id if match else None
        if match is not None:
            methods[match.method] += 1
        if got is not None and got == case.expected:
            tp += 1
        elif got is not None:
            fp += 1
            wrong.append(f"{case.name}: got {got} ({match.method if match else ''}), want {case.expected}")
            if case.expected is not None:
                fn += 1
        elif case.expected is not None:
            fn += 1
            wrong.append(f"{case.name}: unmatched, want {case.expected}")
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {
        "cases": len(corpus.cases),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "by_method": dict(methods),
        "errors": wrong,
    }


def main() -> None:
    """Print the figures (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sent", type=int, default=400, help="sent messages in the corpus")
    parser.add_argument("--errors", action="store_true", help="list the misses")
    args = parser.parse_args()
    tokens = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev")
    corpus = generate(tokens, n_sent=args.sent)
    full = asyncio.run(score(corpus, tokens))
    bare = asyncio.run(score(corpus, tokens, stripped=True))
    for label, result in (("all", full), ("headers stripped", bare)):
        print(
            f"{label:17s} cases={result['cases']} precision={result['precision']:.4f} "
            f"recall={result['recall']:.4f} tp={result['tp']} fp={result['fp']} fn={result['fn']} "
            f"by_method={result['by_method']}"
        )
        if args.errors:
            for line in result["errors"]:
                print("   ", line)
    summary = {
        k: {x: r[x] for x in ("precision", "recall", "tp", "fp", "fn")}
        for k, r in (("all", full), ("stripped", bare))
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
