"""The mini model's text tokenizer: a `tokenizers` word-level vocabulary over the world.

Every word the shapes world can say (descriptors, instructions of every split, concept
knowledge, questions, answers) gets one id; punctuation splits off as its own token. Held-out
instruction words are in the vocabulary so they can be *read* at test time, but their
sentences never appear in pretraining: only what pretraining shows them is learnt.
Image codes are added tokens `<img_k>`, so one id space covers text and images.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
USER, ASSISTANT = "<user>", "<assistant>"
BOI, EOI = "<boi>", "<eoi>"
# Reasoning / answer tags of the evaluator and reprompter formats (../docs/model.md).
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
SPECIAL = (PAD, UNK, BOS, EOS, USER, ASSISTANT, BOI, EOI, *TAGS)
_WORDS = re.compile(r"[a-z]+|[^a-z\s]")


def words(text: str) -> list[str]:
    """How the pre-tokenizer splits text (lower-cased): letters runs and single symbols."""
    return _WORDS.findall(text.lower())


def image_token(code: int) -> str:
    return f"<img_{code}>"


def build_tokenizer(corpus: Iterable[str], codebook_size: int) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: special tokens, then image codes, then the corpus's words."""
    vocab: dict[str, int] = {}
    for token in (*SPECIAL, *(image_token(k) for k in range(codebook_size))):
        vocab[token] = len(vocab)
    for text in corpus:
        for word in words(text):
            vocab.setdefault(word, len(vocab))
    model = WordLevel(vocab, unk_token=UNK)
    tok = Tokenizer(model)
    tok.normalizer = None
    # The same split as `words`, so the vocabulary and the runtime agree on every string.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(_WORDS.pattern), behavior="isolated"),
    ])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins with spaces, tidies " ,"
    tok.add_special_tokens(list(SPECIAL))
    tok.add_tokens([AddedToken(image_token(k), normalized=False) for k in range(codebook_size)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS,
        additional_special_tokens=[USER, ASSISTANT, BOI, EOI, *TAGS],
    )
    fast.padding_side = "left"  # batched generation continues every row at the same place
    return fast
