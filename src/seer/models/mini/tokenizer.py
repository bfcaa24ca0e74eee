"""The mini model's text tokenizer: a `tokenizers` word-level vocabulary over the world.

Every word the shapes world can say (descriptors, instructions of every split, concept
knowledge, questions, answers) gets one id; punctuation splits off as its own token. Held-out
instruction words are in the vocabulary so they can be *read* at test time, but their
sentences never appear in pretraining: only what pretraining shows them is learnt.
Image codes are added tokens `<img_k>`, so one id space covers text and images.

A few word pairs are one token (`PHRASES`, as a BPE merge would make them): "top left" is one
grid cell, "top" alone another. Split in two, a causal model reading "at the top" cannot
tell at "top" which cell is meant (the next word decides), so a code of the top row had to
find a "top" that no "left" or "right" follows; merged, every cell has one token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
USER, ASSISTANT = "<user>", "<assistant>"
BOI, EOI = "<boi>", "<eoi>"
# Reasoning / answer tags of the evaluator and reprompter formats (../docs/model.md).
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
SPECIAL = (PAD, UNK, BOS, EOS, USER, ASSISTANT, BOI, EOI, *TAGS)
PHRASES = ("top left", "top right", "bottom left", "bottom right")


def _pattern(phrases: Iterable[str]) -> str:
    merged = "".join(re.escape(p) + "|" for p in phrases)
    return merged + r"[a-z]+|[^a-z\s]"


def words(text: str, phrases: Iterable[str] = PHRASES) -> list[str]:
    """How the pre-tokenizer splits text (lower-cased): `phrases`, letter runs and single
    symbols."""
    return re.findall(_pattern(phrases), text.lower())


def image_token(code: int) -> str:
    return f"<img_{code}>"


def build_tokenizer(corpus: Iterable[str], codebook_size: int,
                    phrases: Iterable[str] = PHRASES) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: special tokens, then image codes, then the corpus's words (each
    of `phrases` one word)."""
    phrases = tuple(phrases)
    vocab: dict[str, int] = {}
    for token in (*SPECIAL, *(image_token(k) for k in range(codebook_size))):
        vocab[token] = len(vocab)
    for text in corpus:
        for word in words(text, phrases):
            vocab.setdefault(word, len(vocab))
    model = WordLevel(vocab, unk_token=UNK)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Lowercase()  # as `words` reads text
    # The same split as `words`, so the vocabulary and the runtime agree on every string:
    # the pattern matches the words themselves (invert) and whatever lies between is dropped.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_pattern(phrases)), behavior="removed", invert=True)
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins with spaces, tidies " ,"
    tok.add_special_tokens(list(SPECIAL))
    tok.add_tokens([AddedToken(image_token(k), normalized=False) for k in range(codebook_size)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS,
        additional_special_tokens=[USER, ASSISTANT, BOI, EOI, *TAGS],
    )
    fast.padding_side = "left"  # batched generation continues every row at the same place
    return fast
