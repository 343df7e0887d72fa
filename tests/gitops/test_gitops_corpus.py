"""No wrong verdict on the corpus of real-world-shaped repositories (tests/corpus)."""

from __future__ import annotations

from corpus.review import review
from gitops.policy import Finding


def _show(findings: list[Finding]) -> str:
    return "\n".join(f"  {f.target} {f.rule} {f.resource}: {f.message}" for f in findings)


def test_every_finding_on_the_corpus_is_judged_and_none_is_wrong() -> None:
    result = review()
    assert not result.wrong, f"wrong findings returned:\n{_show(result.wrong)}"
    assert not result.unjudged, (
        "findings without a verdict; judge them in tests/corpus/verdicts.yaml:\n"
        + _show(result.unjudged)
    )
    assert not result.unused, f"verdicts that match no finding any more: {result.unused}"
    assert result.counts["correct"] > 0
