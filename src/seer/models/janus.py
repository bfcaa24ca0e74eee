"""Janus-Pro behind the `UnifiedModel` interface, over transformers' native classes.

`JanusForConditionalGeneration` holds a SigLIP-style encoder (understanding), a Llama
language model, a VQ tokenizer and separate generation embeddings/head (image tokens);
`JanusProcessor` holds the tokenizer, the image processor and the chat template. This
adapter drives them as the SEER stages need:

- Prompts go through the processor's own chat template (one user turn: its images, then
  the text; then the opened assistant turn). A `prefix` is appended after one space, as
  the template writes an assistant message ("<|Assistant|>: text"). Image placeholders
  are expanded by the processor (576 per image for Janus-Pro), so one or two images per
  prompt work alike; rows are left-padded and positions count real tokens only.
- Text: sampling with a KV cache and per-token log-probs at the sampling temperature,
  drawn from a `torch.Generator`; `completion_logprobs` is the same computation as one
  forward pass, with gradient.
- P(Yes): next-token probabilities summed over the first tokens of "Yes", " Yes", "yes"
  and " yes" (and the same for No), keeping only ids that are the whole word, so the
  reading holds whether the model answers capitalised after "<|Assistant|>:" or in the
  RLVR format "<answer> yes </answer>". `yes_ids` / `no_ids` hold the chosen ids.
- Images: our own sampling loop over the model's generation embeddings and head (what
  `generate(generation_mode="image")` does, but with one `torch.Generator` per row, so a
  row's image depends on its text and seed only). Classifier-free guidance as in Janus:
  the unconditional row is the same prompt with every token but BOS and <begin_of_image>
  replaced by the pad token (attended), logits = uncond + scale * (cond - uncond); left
  padding is masked in both halves. Pixels from `decode_image_tokens`, PIL images from
  the processor's `postprocess`.

Weights load from a local folder in Hugging Face layout only (`local_files_only=True`):
the layout of the converted checkpoints (`config.json` with `model_type: "janus"`,
safetensors, tokenizer, processor files and chat template). DeepSeek's original release
(`model_type: "multi_modality"`) must be converted first with transformers'
`convert_janus_weights_to_hf.py`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from seer.io import atomic_dir
from seer.models._hub import quiet_hub_bars
from seer.models._text import completion_logps, left_pad, samples_at_eos
from seer.models.fsdp import gathered_call, plain_lm, plain_state, root_call
from seer.models.interface import ImageList, ModelError, TextSamples, UnifiedModel, YesNo

MODEL_TYPE = "janus"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
ANSWER_FORMS = {"yes": ("Yes", " Yes", "yes", " yes"), "no": ("No", " No", "no", " no")}
DEFAULT_GUIDANCE = 5.0  # Janus-Pro's published CFG weight, when the generation config has none
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def is_janus_dir(path: str | Path) -> bool:
    """The dispatch marker: `config.json` whose `model_type` is "janus"."""
    config = Path(path) / "config.json"
    try:
        return json.loads(config.read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False




def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _dtype(value) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    if str(value) in DTYPES:
        return DTYPES[str(value)]
    raise ModelError(f"unknown dtype {value!r} (expected one of: {', '.join(DTYPES)})")


def check_dir(directory: Path) -> None:
    """A one-line `ModelError` naming the first thing a Janus folder lacks."""
    if not directory.is_dir():
        raise ModelError(f"{directory}: no such model folder")
    config = directory / "config.json"
    if not config.exists():
        raise ModelError(f"{directory}: not a Janus model folder (missing config.json)")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as err:
        raise ModelError(f"{directory}: cannot read config.json: {_first_line(err)}") from None
    if model_type == "multi_modality":
        raise ModelError(f"{directory}: DeepSeek's original Janus layout; convert it with transformers' "
                         "convert_janus_weights_to_hf.py (model_type 'janus')")
    if model_type != MODEL_TYPE:
        raise ModelError(f"{directory}: config.json has model_type {model_type!r}, expected 'janus'")
    weights = [name for name in WEIGHT_FILES if (directory / name).exists()]
    if not weights:
        raise ModelError(f"{directory}: missing the weights (model.safetensors or its index)")
    if weights[0].endswith(".index.json"):
        try:
            shards = sorted(set(json.loads((directory / weights[0]).read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as err:
            raise ModelError(f"{directory}: cannot read {weights[0]}: {_first_line(err)}") from None
        missing = [s for s in shards if not (directory / s).exists()]
        if missing:
            raise ModelError(f"{directory}: missing weight shard {missing[0]} "
                             f"({len(missing)} of {len(shards)} missing)")
    if not any((directory / name).exists() for name in TOKENIZER_FILES):
        raise ModelError(f"{directory}: missing the tokenizer (tokenizer.json)")
    if not any((directory / name).exists() for name in PROCESSOR_FILES):
        raise ModelError(f"{directory}: missing the processor config (processor_config.json or "
                         "preprocessor_config.json)")


class JanusUMM(UnifiedModel):
    backend = "janus"

    def __init__(self, model, processor, autocast: torch.dtype | None = None):
        self.model, self.processor = model, processor
        self.autocast = autocast  # compute dtype over float32 weights (mixed precision), or None
        self.tokenizer = tok = processor.tokenizer
        if getattr(processor, "chat_template", None) is None:
            raise ModelError("the Janus processor has no chat template")
        self.eos_id = tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_id
        self.bos_id = tok.bos_token_id
        self.boi_id = tok.convert_tokens_to_ids(processor.image_start_token)
        self.image_token_id = model.config.image_token_id
        self.yes_ids, self.no_ids = self._answer_ids("yes"), self._answer_ids("no")
        if set(self.yes_ids) & set(self.no_ids):
            raise ModelError("the tokenizer's yes and no tokens overlap")
        # Only the text side trains: the language model and its output head.
        self.model.requires_grad_(False)
        self.lm.requires_grad_(True)
        self.model.lm_head.requires_grad_(True)
        self.train(False)

    def _answer_ids(self, word: str) -> list[int]:
        ids = []
        for form in ANSWER_FORMS[word]:
            pieces = self.tokenizer(form, add_special_tokens=False)["input_ids"]
            if pieces and self.tokenizer.decode(pieces[:1]).strip().lower() == word and pieces[0] not in ids:
                ids.append(pieces[0])
        if not ids:
            raise ModelError(f"the tokenizer has no single token for the answer '{word}'")
        return ids

    # ------------------------------------------------------------ parts

    @property
    def lm(self) -> torch.nn.Module:
        """The language model (a `peft` model once LoRA is enabled)."""
        return self.model.model.language_model

    @property
    def image_tokens(self) -> int:
        return math.prod(self.model.model.vqmodel.quantize.quant_state_dims)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm_head.weight.dtype

    def _compute(self):
        """Mixed precision when asked for: float32 weights, bf16/fp16 matmuls."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast)

    def train(self, mode: bool = True) -> JanusUMM:
        self.model.eval()  # the vision encoder and VQ model stay frozen in eval mode
        self.lm.train(mode)
        return self

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        seen, out = set(), []
        for p in [*self.lm.parameters(), *self.model.lm_head.parameters()]:
            if p.requires_grad and id(p) not in seen:  # a tied head is the embedding
                seen.add(id(p))
                out.append(p)
        return out

    def enable_lora(self, r: int = 8, alpha: int = 16, dropout: float = 0.0,
                    target_modules: list[str] | None = None) -> None:
        from peft import LoraConfig, get_peft_model

        self.model.lm_head.requires_grad_(False)
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                            target_modules=target_modules or LORA_TARGETS)
        with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing`
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.model.model.language_model = get_peft_model(self.lm, config)

    def fsdp_units(self) -> tuple[list[torch.nn.Module], dict[str, torch.nn.Module]]:
        """The language model's decoder layers; the root holds the rest of Janus (its
        embeddings and head, and the frozen vision encoder, VQ model and generation head,
        which its forward and image generation use)."""
        base = plain_lm(self.lm)
        layers = getattr(base, "layers", None)
        if layers is None:
            raise ModelError(f"cannot shard Janus: its language model ({type(base).__name__}) has no layers")
        return list(layers), {"model": self.model}

    def gradient_checkpointing(self, enable: bool = True) -> None:
        """Recompute the language model's activations in backward (training mode only)."""
        on = getattr(self.model, "activation_checkpointing_enable", None)  # transformers >= 5.2x
        off = getattr(self.model, "activation_checkpointing_disable", None)
        if enable:
            (on or self.model.gradient_checkpointing_enable)({"use_reentrant": False})
        else:
            (off or self.model.gradient_checkpointing_disable)()

    # ------------------------------------------------------------ weights

    def plain_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's weights under the names of a plain Janus model: LoRA adapters, if
        any, merged into copies of their base weights (the live model is not touched)."""
        state = self.model.state_dict()
        if not hasattr(self.lm, "peft_config"):
            return state
        from peft.tuners.lora import LoraLayer

        head = "model.language_model."
        inner = "base_model.model."
        merged = {}
        for name, module in self.lm.named_modules():
            if isinstance(module, LoraLayer):
                base = module.get_base_layer()
                weight = base.weight.detach().clone()
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        weight += module.get_delta_weight(adapter).to(weight.dtype)
                merged[head + name.removeprefix(inner) + ".weight"] = weight
        out = {}
        for key, value in state.items():
            if "lora_" in key:
                continue
            plain = key.replace(head + inner, head).replace(".base_layer.", ".")
            out[plain] = merged.get(plain, value)
        return out

    def save_pretrained(self, directory: str | Path) -> None:
        """config.json + safetensors + generation config + processor files (tokenizer, image
        processor, chat template); LoRA merged; the folder appears whole or not at all.
        Sharded: collective (see `UnifiedModel.save_pretrained`)."""
        if self._sharded is not None:
            state = self._sharded.full_state(self.model)
            if not self._sharded.is_main:
                return
            state = plain_state(self.lm, state, prefix="model.language_model.")
        else:
            state = self.plain_state_dict()
        with atomic_dir(directory) as tmp, quiet_hub_bars():
            self.model.save_pretrained(tmp, state_dict=state)
            self.processor.save_pretrained(tmp)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, dtype: torch.dtype | str | None = None,
                        device: str | torch.device | None = None, autocast: torch.dtype | str | None = None,
                        gradient_checkpointing: bool = False, attn_implementation: str | None = None,
                        **options) -> JanusUMM:
        """Load a local Janus folder (never a hub). Options:
        `dtype`: float32 / bfloat16 / float16 (default: bfloat16 on CUDA, float32 on CPU);
        `device`: default cuda:$LOCAL_RANK when CUDA is available, else the CPU;
        `autocast`: bfloat16 / float16 compute over float32 weights (mixed precision: use
        it with dtype float32 for full fine-tuning, where bf16 weights would round small
        updates away);
        `gradient_checkpointing`: recompute the language model's activations in training;
        `attn_implementation`: passed to transformers ("sdpa", "eager", "flash_attention_2")."""
        if options:
            raise ModelError(f"unknown Janus loading option(s): {', '.join(sorted(options))} (known: dtype, "
                             "device, autocast, gradient_checkpointing, attn_implementation)")
        from transformers import JanusForConditionalGeneration, JanusProcessor

        directory = Path(directory)
        check_dir(directory)
        if device is None:  # one GPU per process under `accelerate launch` / torchrun
            device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        dtype = _dtype(dtype) or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        try:
            with quiet_hub_bars():
                model = JanusForConditionalGeneration.from_pretrained(
                    directory, dtype=dtype, local_files_only=True, **extra)
                processor = JanusProcessor.from_pretrained(directory, local_files_only=True)
        except (OSError, TypeError, ValueError, KeyError, RuntimeError) as err:
            raise ModelError(f"{directory}: cannot load the Janus model: {_first_line(err)}") from None
        processor.tokenizer.padding_side = "left"
        umm = cls(model.to(device), processor, autocast=_dtype(autocast))
        if gradient_checkpointing:
            umm.gradient_checkpointing(True)
        return umm

    # ------------------------------------------------------------ sequences

    def chat_text(self, prompt: str, n_images: int = 0, prefix: str = "") -> str:
        """The user turn (images first, then the text) and the opened assistant turn, in the
        processor's chat template; `prefix` follows after one space."""
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": prompt}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)
        return text + f" {prefix}" if prefix else text

    def _prompts(self, prompts: list[str], images: list[ImageList] | None, prefix: str | list[str],
                 mode: str = "text") -> tuple[list[list[int]], torch.Tensor | None]:
        """Each prompt's token ids (unpadded) and the pixel values of all its images, in order."""
        if images is not None and len(images) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} image lists")
        prefixes = [prefix] * len(prompts) if isinstance(prefix, str) else list(prefix)
        if len(prefixes) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(prefixes)} prefixes")
        counts = [len(row) for row in images] if images is not None else [0] * len(prompts)
        texts = [self.chat_text(p, n, x) for p, n, x in zip(prompts, counts, prefixes, strict=True)]
        flat = [im.convert("RGB") for row in images or [] for im in row]
        batch = self.processor(text=texts, images=flat or None, padding=True, return_tensors="pt",
                               generation_mode=mode)
        rows = [ids[m.bool()].tolist()
                for ids, m in zip(batch["input_ids"], batch["attention_mask"], strict=True)]
        pixels = batch.get("pixel_values") if flat else None
        if pixels is not None:
            pixels = pixels.to(self.device, self.model.model.vision_model.dtype)
        return rows, pixels

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_pad(rows, self.pad_id, self.device)

    @staticmethod
    def _positions(mask: torch.Tensor, width: int) -> torch.Tensor:
        """Positions count real tokens only, so left padding never shifts a row."""
        return (mask.cumsum(1) - 1).clamp(min=0)[:, -width:]

    @root_call
    def forward_logits(self, ids: torch.Tensor, mask: torch.Tensor, pixel_values: torch.Tensor | None = None,
                       cache=None, keep: int = 0, use_cache: bool = False):
        """Text logits (and the KV cache when `use_cache`) for left-padded rows; `mask` covers
        the cached positions too."""
        with self._compute():
            out = self.model(input_ids=ids, pixel_values=pixel_values, attention_mask=mask,
                             position_ids=self._positions(mask, ids.shape[1]), cache=cache,
                             use_cache=use_cache or cache is not None, logits_to_keep=keep)
        return out.logits, out.cache

    # ------------------------------------------------------------ text

    @torch.no_grad()
    @gathered_call
    def generate_text(self, prompts, images=None, *, max_new_tokens=64, temperature=1.0, top_k=None,
                      generator=None, prefix="") -> TextSamples:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        rows, pixels = self._prompts(prompts, images, prefix)
        ids, mask = self._left_pad(rows)
        logits, cache = self.forward_logits(ids, mask, pixels, keep=1, use_cache=True)
        n = len(prompts)
        done = torch.zeros(n, dtype=torch.bool)
        sampled, logps = [], []
        for _ in range(max_new_tokens):
            step = logits[:, -1].float() / max(temperature, 1e-6)
            if top_k is not None:
                kth = step.topk(top_k, dim=-1).values[:, -1:]
                step = step.masked_fill(step < kth, float("-inf"))
            logp = F.log_softmax(step, dim=-1)
            token = torch.multinomial(logp.exp().cpu(), 1, generator=generator).squeeze(1)
            token = torch.where(done, torch.full_like(token, self.pad_id), token)
            sampled.append(token)
            logps.append(logp.gather(1, token[:, None].to(logp.device)).squeeze(1).cpu())
            done |= token == self.eos_id
            if done.all():
                break
            mask = torch.cat([mask, (~done).long()[:, None].to(mask.device)], dim=1)
            logits, cache = self.forward_logits(token[:, None].to(self.device), mask, cache=cache, keep=1)
        tokens, lps = torch.stack(sampled, 1), torch.stack(logps, 1)
        return samples_at_eos(tokens, lps, self.eos_id, self.decode_text)

    def decode_text(self, token_ids: torch.Tensor) -> str:
        ids = [int(t) for t in token_ids if int(t) not in (self.eos_id, self.pad_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=False).strip()

    @root_call
    def completion_logprobs(self, prompts, completions, images=None, prefix="",
                            temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        heads, pixels = self._prompts(prompts, images, prefix)
        rows = [h + c.tolist() for h, c in zip(heads, completions, strict=True)]
        ids, mask = self._left_pad(rows)
        width = max(len(c) for c in completions)
        if width == 0:
            empty = torch.zeros((len(rows), 0), device=ids.device)
            return empty, empty.bool()
        logits, _ = self.forward_logits(ids, mask, pixels, keep=width + 1)
        return completion_logps(logits, ids, completions, temperature)

    @torch.no_grad()
    @gathered_call
    def p_yes(self, questions, images, prefix="") -> YesNo:
        rows, pixels = self._prompts(questions, images, prefix)
        ids, mask = self._left_pad(rows)
        logits, _ = self.forward_logits(ids, mask, pixels, keep=1)
        probs = F.softmax(logits[:, -1].float(), dim=-1)
        yes = probs[:, self.yes_ids].sum(1).cpu()
        no = probs[:, self.no_ids].sum(1).cpu()
        return YesNo(yes / (yes + no).clamp(min=1e-12), yes, no)

    # ------------------------------------------------------------ images

    def default_guidance(self) -> float:
        value = getattr(self.model.generation_config, "guidance_scale", None)
        return float(value) if value is not None else DEFAULT_GUIDANCE

    @gathered_call
    def generate_image_ids(self, texts: list[str], *, guidance_scale: float | None = None,
                           temperature: float | None = None, seed: int | list[int] = 0) -> torch.Tensor:
        """N x image_tokens VQ codes, conditional and unconditional rows in one batch."""
        with torch.no_grad(), self._compute():
            return self._sample_image_ids(texts, guidance_scale, temperature, seed)

    def _sample_image_ids(self, texts, guidance_scale, temperature, seed) -> torch.Tensor:
        scale = self.default_guidance() if guidance_scale is None else float(guidance_scale)
        temperature = 1.0 if temperature is None else temperature
        seeds = [seed + i for i in range(len(texts))] if isinstance(seed, int) else list(seed)
        if len(seeds) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(seeds)} seeds")
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        n = len(texts)
        rows, _ = self._prompts(texts, None, "", mode="image")  # the processor appends <begin_of_image>
        use_cfg = scale != 1.0
        if use_cfg:  # Janus's unconditional prompt: the same row, all but BOS and BOI padded
            rows += [[t if t in (self.bos_id, self.boi_id) else self.pad_id for t in r] for r in rows]
        ids, mask = self._left_pad(rows)
        lm, head = self.lm, self.model.model.generation_head
        embeds = self.model.get_input_embeddings()(ids)
        out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=self._positions(mask, ids.shape[1]),
                 use_cache=True)
        codes = []
        for k in range(self.image_tokens):
            scores = head(out.last_hidden_state[:, -1]).float()
            if use_cfg:
                scores = scores[n:] + scale * (scores[:n] - scores[n:])
            probs = F.softmax(scores / max(temperature, 1e-6), dim=-1).cpu()
            code = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)])
            codes.append(code)
            if k + 1 == self.image_tokens:
                break
            step = (torch.cat([code, code]) if use_cfg else code)[:, None].to(self.device)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            embeds = self.model.prepare_embeddings_for_image_generation(step)
            out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=self._positions(mask, 1),
                     cache=out.cache, use_cache=True)
        return torch.stack(codes, 1)

    @torch.no_grad()
    @gathered_call
    def decode_images(self, codes: torch.Tensor) -> ImageList:
        pixels = self.model.decode_image_tokens(codes.to(self.device))  # N x H x W x C, in [-1, 1]
        # Channels first for the image processor: its PIL backend reads HWC arrays wrongly.
        chw = [p.permute(2, 0, 1).float().cpu() for p in pixels]
        images = self.processor.postprocess(chw, return_tensors="PIL.Image.Image")["pixel_values"]
        return [im if isinstance(im, Image.Image) else Image.fromarray(im) for im in images]

    @gathered_call
    def generate_images(self, texts, *, guidance_scale=None, temperature=1.0, seed=0) -> ImageList:
        if not texts:
            return []
        return self.decode_images(self.generate_image_ids(texts, guidance_scale=guidance_scale,
                                                          temperature=temperature, seed=seed))


# ---------------------------------------------------------------- a tiny random Janus (tests)

TINY_SPECIALS = {"bos": "<｜begin▁of▁sentence｜>", "eos": "<｜end▁of▁sentence｜>", "pad": "<｜▁pad▁｜>",
                 "image": "<image_placeholder>", "boi": "<begin_of_image>", "eoi": "<end_of_image>"}
# Our own template in Janus-Pro's conversation format: "<|User|>: [images] text\n\n<|Assistant|>:".
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|User|>: ' }}{% else %}{{ '<|Assistant|>: ' }}{% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image_placeholder>\n' }}"
    "{% else %}{{ part['text'] | trim }}{% endif %}"
    "{% endfor %}"
    "{% if message['role'] == 'user' %}{{ '\n\n' }}{% else %}{{ '<｜end▁of▁sentence｜>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|Assistant|>:' }}{% endif %}"
)
TINY_CORPUS = (
    "<|User|>: <|Assistant|>: Yes No yes no <think> </think> <answer> </answer> "
    "does the first image match the instruction better than the second image ? think , then answer . "
    "a large small red green blue yellow white black gray circle square triangle cross on the left right "
    "top bottom center background make it look like night snow festive scary cute pixelate the image "
    "fits does not fit rewrite the prompt draw an picture of with and in is there"
)


def tiny_janus(directory: str | Path | None = None, seed: int = 0) -> JanusUMM:
    """A tiny random Janus (Llama hidden 32, 2 layers, 4 heads; 32 px images of 4 x 4 = 16
    tokens) with a byte-level BPE tokenizer trained here on a few sentences; written to
    `directory` in Hugging Face layout when given. Builds in well under a second."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        JanusConfig,
        JanusForConditionalGeneration,
        JanusProcessor,
        LlamaConfig,
        PreTrainedTokenizerFast,
    )
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    sp = TINY_SPECIALS
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=list(sp.values()), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([TINY_CORPUS] * 4, trainer)
    bpe.post_processor = processors.TemplateProcessing(single=f"{sp['bos']} $A", special_tokens=[
        (sp["bos"], bpe.token_to_id(sp["bos"]))])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=sp["bos"], eos_token=sp["eos"], pad_token=sp["pad"],
        extra_special_tokens={"image_token": sp["image"], "boi_token": sp["boi"], "eoi_token": sp["eoi"]},
        padding_side="left")
    side, patch = 32, 8
    tokens = (side // patch) ** 2
    image_processor = JanusImageProcessorPil(size={"height": side, "width": side}, image_mean=[0.5] * 3,
                                             image_std=[0.5] * 3)
    processor = JanusProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               chat_template=TINY_CHAT_TEMPLATE, use_default_system_prompt=True,
                               num_image_tokens=tokens)
    hidden = 32
    config = JanusConfig(
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(hidden_size=hidden, num_hidden_layers=1, num_attention_heads=4, image_size=side,
                           patch_size=patch, projection_dim=hidden, num_image_tokens=tokens, mlp_ratio=2.0),
        vq_config=dict(embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32,
                       channel_multiplier=[1, 1, 1, 1], num_res_blocks=1, projection_dim=hidden,
                       image_token_embed_dim=hidden),
        image_token_id=tokenizer.convert_tokens_to_ids(sp["image"]), tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(config)
    model.generation_config.guidance_scale = 3.0
    umm = JanusUMM(model, processor)
    if directory is not None:
        umm.save_pretrained(directory)
    return umm
