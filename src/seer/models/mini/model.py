"""The mini unified model: one `transformers` Llama over words and image codes.

Chameleon-style early fusion: an image is its VQ codes between <boi> and <eoi>, placed in
the token stream like words. One sequence layout serves every task:

    understanding   <bos> <user> [<boi> codes <eoi>]* question <assistant> answer <eos>
    generation      <bos> <user> text <assistant> <boi> codes <eoi>
    unconditional   <bos> <user> <assistant> <boi> codes <eoi>     (classifier-free guidance)

Generation is forced into image mode by the <boi> after <assistant>; the sampler draws
only image codes, mixing conditional and unconditional logits (CFG) in one batch, with a
KV cache. Directory layout (Hugging Face): `lm/` (LlamaForCausalLM), `vq/` (VQModel),
`tokenizer/`, and `mini.json` (image size, guidance).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import VQModel
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from seer.io import atomic_dir, atomic_write_json
from seer.models._hub import quiet_hub_bars
from seer.models._text import (
    completion_logps,
    left_pad,
    reserve,
    right_align,
    right_pad,
    samples_at_eos,
    shared_heads,
)
from seer.models.fsdp import full_lm_state, gathered_call, plain_lm, root_call
from seer.models.interface import ImageList, ModelError, TextSamples, UnifiedModel, YesNo
from seer.models.mini import tokenizer as tk
from seer.models.mini.vq import PaletteVQ, to_palette, to_rgb, vq_config

CONFIG_FILE = "mini.json"
POSITIONS_FILE = "image_positions.safetensors"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclasses.dataclass
class MiniConfig:
    # 60 px, not the world's 64: a grid cell is then 20 px, five 4 px codes, so an object
    # covers the same codes in whichever cell it stands and the tokenizer and the transformer
    # learn one drawing of it, not three offsets per axis (docs/model.md, run k).
    image_size: int = 60
    guidance_scale: float = 3.0
    image_temperature: float = 1.0
    # Architecture, used only when building a fresh model (`MiniUMM.create`).
    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 4
    codebook_size: int = 1024
    vq_channels: tuple[int, ...] = (32, 64)
    vq_unshuffle: int = 2
    # One code per vq_unshuffle x vq_unshuffle patch, computed from that patch alone
    # (`PaletteVQ.local`; use with vq_channels [128] and vq_unshuffle 4): equal patches get
    # equal codes everywhere. Off by default: run g's local tokenizer read back 67% of scenes
    # exactly (the convolutional one 87%) and the transformer drew no better on it
    # (docs/benchmarks.md). Folders written before it existed load with it off.
    vq_local: bool = False
    # The encoder normalises each position over its channels (`vq.PixelChannelNorm`) instead
    # of with group norm, whose image-wide statistics made every code depend on the whole
    # picture (docs/model.md). Off by default: run h's codes became predictable (generation
    # loss halved) but it drew and understood no better than run e (docs/benchmarks.md).
    # Folders written before it load with it off.
    vq_local_norm: bool = False
    # Learned row and column embeddings added to image codes: with only 1-D RoPE positions a
    # small model must count codes from <boi> to know where it is in the image (it read
    # colours but not shapes). Folders written before they existed load without them.
    image_positions: bool = True
    # Word pairs the text tokenizer keeps as one token (`tokenizer.PHRASES`: one token per grid
    # cell). Folders written before it existed split them and load with none.
    text_phrases: tuple[str, ...] = tk.PHRASES

    @property
    def tokens_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def patch_size(self) -> int:
        """Pixels per code along a side (a local tokenizer has no downsampling blocks)."""
        return self.vq_unshuffle * (1 if self.vq_local else 2 ** (len(self.vq_channels) - 1))

    @property
    def image_tokens(self) -> int:
        return self.tokens_per_side**2

    @classmethod
    def tiny(cls, **changes) -> MiniConfig:
        """A tiny random configuration (64 image tokens of an 8x8 grid, 2 small layers):
        for tests and smoke runs of every command in seconds, never for figures."""
        base = dict(image_size=64, hidden_size=32, num_layers=2, num_heads=2, codebook_size=32,
                    vq_channels=(32,), vq_unshuffle=8, vq_local=True)
        return cls(**{**base, **changes})


def new_vq(config: MiniConfig) -> PaletteVQ:
    """A freshly initialised image tokenizer for `config`."""
    return PaletteVQ(VQModel(**vq_config(config.image_size, config.vq_unshuffle, config.codebook_size,
                                         config.vq_channels, local=config.vq_local)),
                     config.vq_unshuffle, config.vq_local, config.vq_local_norm)


class ImagePositions(torch.nn.Module):
    """Row + column embeddings of an image's code grid, added to the code embeddings.
    Zero at initialisation, so adding them to a trained model changes nothing until trained."""

    def __init__(self, side: int, hidden_size: int):
        super().__init__()
        self.side = side
        self.rows = torch.nn.Parameter(torch.zeros(side, hidden_size))
        self.cols = torch.nn.Parameter(torch.zeros(side, hidden_size))

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.rows[index // self.side] + self.cols[index % self.side]


class MiniUMM(UnifiedModel):
    backend = "mini"

    def __init__(self, lm: LlamaForCausalLM, vq: PaletteVQ, tokenizer: PreTrainedTokenizerFast,
                 config: MiniConfig, positions: ImagePositions | None = None):
        self.lm, self.vq, self.tokenizer, self.config = lm, vq, tokenizer, config
        if positions is None and config.image_positions:
            positions = ImagePositions(config.tokens_per_side, lm.config.hidden_size)
        self.image_positions = positions.to(self.lm.device) if positions is not None else None
        ids = tokenizer.convert_tokens_to_ids
        self.pad_id, self.bos_id, self.eos_id = ids(tk.PAD), ids(tk.BOS), ids(tk.EOS)
        self.user_id, self.assistant_id = ids(tk.USER), ids(tk.ASSISTANT)
        self.boi_id, self.eoi_id = ids(tk.BOI), ids(tk.EOI)
        self.code_offset = ids(tk.image_token(0))
        self.yes_id, self.no_id = ids("yes"), ids("no")
        if tk.UNK in tokenizer.convert_ids_to_tokens([self.yes_id, self.no_id]):
            raise ModelError("the mini tokenizer has no 'yes'/'no' words")
        # What a text position may emit: words and <eos>. One vocabulary holds the image codes
        # and the turn and image markers too, but in a real UMM the text head cannot write
        # them (Janus and Harmon have a separate image head), so text sampling, scoring and
        # P(Yes) read the logits restricted to text.
        self.text_vocab = torch.ones(len(tokenizer), dtype=torch.bool)
        self.text_vocab[self.code_offset : self.code_offset + config.codebook_size] = False
        markers = [self.pad_id, self.bos_id, self.user_id, self.assistant_id, self.boi_id, self.eoi_id]
        self.text_vocab[markers] = False
        self.vq.eval().requires_grad_(False)

    # ------------------------------------------------------------ building and weights

    @classmethod
    def create(cls, corpus: list[str], config: MiniConfig | None = None, seed: int = 0,
               vq: PaletteVQ | None = None) -> MiniUMM:
        """A freshly initialised model whose vocabulary covers `corpus` (and a fresh image
        tokenizer unless a trained `vq` is given)."""
        config = config or MiniConfig()
        torch.manual_seed(seed)
        tokenizer = tk.build_tokenizer(corpus, config.codebook_size, config.text_phrases)
        if vq is None:
            vq = new_vq(config)
        lm_config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=config.hidden_size,
            intermediate_size=3 * config.hidden_size, num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads, num_key_value_heads=config.num_heads,
            max_position_embeddings=4 * config.image_tokens + 256, tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return cls(LlamaForCausalLM(lm_config), vq, tokenizer, config)

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write lm/, vq/, tokenizer/ and mini.json; the folder appears whole or not at all.
        `dtype=torch.float16` halves the size on disk (the package's committed weights).
        Sharded: collective (see `UnifiedModel.save_pretrained`)."""
        if self._sharded is not None:
            lm, lm_state = full_lm_state(self._sharded, self.lm)
            positions = (self._sharded.full_state(self.image_positions)
                         if self.image_positions is not None else None)
            if not self._sharded.is_main:
                return
        else:
            lm = self._merged_lm()
            lm_state = lm.state_dict() if dtype else None
            positions = self.image_positions.state_dict() if self.image_positions is not None else None
        with atomic_dir(directory) as tmp:
            # Cast copies, so the live model keeps its precision whatever happens here.
            weights = {k: v.to(dtype) for k, v in lm_state.items()} if dtype and lm_state else lm_state
            with quiet_hub_bars():
                lm.save_pretrained(tmp / "lm", state_dict=weights)
            vq = copy.deepcopy(self.vq.vq)
            (vq.to(dtype) if dtype else vq).save_pretrained(tmp / "vq")
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            if positions is not None:
                save_file({k: (v.to(dtype) if dtype else v).detach().cpu().contiguous()
                           for k, v in positions.items()}, tmp / POSITIONS_FILE)
            atomic_write_json(tmp / CONFIG_FILE, dataclasses.asdict(self.config))

    @classmethod
    def from_pretrained(cls, directory: str | Path, **options) -> MiniUMM:
        directory = Path(directory)
        for part in (CONFIG_FILE, "lm/config.json", "vq/config.json", "tokenizer/tokenizer.json"):
            if not (directory / part).exists():
                raise ModelError(f"{directory}: not a mini model directory (missing {part})")
        try:
            raw = json.loads((directory / CONFIG_FILE).read_text())
            raw["vq_channels"] = tuple(raw.get("vq_channels", MiniConfig.vq_channels))
            raw.setdefault("image_positions", False)  # folders from before they existed
            raw.setdefault("vq_local", False)
            raw.setdefault("vq_local_norm", False)
            raw["text_phrases"] = tuple(raw.get("text_phrases", ()))
            if raw["image_positions"] and not (directory / POSITIONS_FILE).exists():
                raise ModelError(f"{directory}: not a mini model directory (missing {POSITIONS_FILE})")
            config = MiniConfig(**{**raw, **options})
            with quiet_hub_bars():
                lm = LlamaForCausalLM.from_pretrained(directory / "lm", dtype=torch.float32)
            vq = VQModel.from_pretrained(directory / "vq", torch_dtype=torch.float32)
            tokenizer = PreTrainedTokenizerFast.from_pretrained(directory / "tokenizer")
            positions = None
            if config.image_positions and (directory / POSITIONS_FILE).exists():
                positions = ImagePositions(config.tokens_per_side, lm.config.hidden_size)
                saved = load_file(directory / POSITIONS_FILE)
                positions.load_state_dict({k: v.float() for k, v in saved.items()})
        except (OSError, TypeError, ValueError, RuntimeError, SafetensorError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"{directory}: cannot load the mini model: {first}") from None
        tokenizer.padding_side = "left"
        vq = PaletteVQ(vq, config.vq_unshuffle, config.vq_local, config.vq_local_norm)
        return cls(lm, vq, tokenizer, config, positions)

    def _merged_lm(self) -> LlamaForCausalLM:
        if hasattr(self.lm, "merge_and_unload"):  # peft: save plain weights, loadable anywhere
            return copy.deepcopy(self.lm).merge_and_unload()
        return self.lm

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        extra = list(self.image_positions.parameters()) if self.image_positions is not None else []
        return [p for p in [*self.lm.parameters(), *extra] if p.requires_grad]

    def enable_lora(self, r: int = 8, alpha: int = 16, dropout: float = 0.0,
                    target_modules: list[str] | None = None) -> None:
        from peft import LoraConfig, get_peft_model

        self.lm = get_peft_model(self.lm, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                                                     target_modules=target_modules or LORA_TARGETS))
        if self.image_positions is not None:
            self.image_positions.requires_grad_(False)  # LoRA trains the adapters only

    def fsdp_units(self) -> tuple[list[torch.nn.Module], dict[str, torch.nn.Module]]:
        return list(plain_lm(self.lm).model.layers), {"lm": self.lm, "image_positions": self.image_positions}

    def train(self, mode: bool = True) -> MiniUMM:
        self.lm.train(mode)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    # ------------------------------------------------------------ images <-> codes

    def encode_images(self, images: ImageList) -> torch.Tensor:
        """N x image_tokens token ids (codes shifted into the shared vocabulary)."""
        size = self.config.image_size
        arrays = []
        for image in images:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.NEAREST)
            arrays.append(np.asarray(image))
        return self.vq.encode(to_palette(np.stack(arrays)).to(self.device)).cpu() + self.code_offset

    def decode_images(self, token_ids: torch.Tensor) -> ImageList:
        palette = self.vq.decode((token_ids - self.code_offset).clamp(0, self.config.codebook_size - 1)
                                 .to(self.device))
        return [Image.fromarray(a, "RGB") for a in to_rgb(palette.cpu())]

    # ------------------------------------------------------------ sequences

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text.lower(), add_special_tokens=False)["input_ids"] if text else []

    def user_turn(self, prompt: str, image_ids: list[torch.Tensor] = (), prefix: str = "") -> list[int]:
        ids = [self.bos_id, self.user_id]
        for codes in image_ids:
            ids += [self.boi_id, *codes.tolist(), self.eoi_id]
        return ids + self.text_ids(prompt) + [self.assistant_id] + self.text_ids(prefix)

    def _prompts(self, prompts: list[str], images: list[ImageList] | None,
                 prefix: str | list[str]) -> list[list[int]]:
        if images is not None and len(images) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} image lists")
        prefixes = [prefix] * len(prompts) if isinstance(prefix, str) else list(prefix)
        if len(prefixes) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(prefixes)} prefixes")
        flat = [im for row in images or [] for im in row]
        codes = list(self.encode_images(flat)) if flat else []
        out, k = [], 0
        for i, prompt in enumerate(prompts):
            n = len(images[i]) if images is not None else 0
            out.append(self.user_turn(prompt, codes[k:k + n], prefixes[i]))
            k += n
        return out

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_pad(rows, self.pad_id, self.device)

    def embed(self, ids: torch.Tensor, image_index: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings: token embeddings, plus each image code's row and column.
        `image_index` gives each token's place in its image's code grid; by default it is
        counted from the last <boi> in `ids` (so pass it when decoding codes one at a time)."""
        embeds = self.lm.get_input_embeddings()(ids)
        if self.image_positions is None:
            return embeds
        is_code = (ids >= self.code_offset) & (ids < self.code_offset + self.config.codebook_size)
        if image_index is None:
            seen = is_code.long().cumsum(1)
            at_boi = torch.where(ids == self.boi_id, seen, torch.zeros_like(seen)).cummax(1).values
            image_index = seen - at_boi - 1
        image_index = image_index.clamp(0, self.config.image_tokens - 1)
        return embeds + self.image_positions(image_index) * is_code[..., None].to(embeds.dtype)

    @root_call
    def forward_logits(self, ids: torch.Tensor, mask: torch.Tensor, cache=None, keep: int = 0,
                       use_cache: bool = False, image_index: torch.Tensor | None = None):
        """Logits (and the KV cache when `use_cache`) for left-padded rows; `mask` covers the
        cached positions too; positions count real tokens only, so padding never shifts them."""
        positions = (mask.cumsum(1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        out = self.lm(inputs_embeds=self.embed(ids, image_index), attention_mask=mask, position_ids=positions,
                      cache=cache, use_cache=use_cache or cache is not None, logits_to_keep=keep)
        return out.logits, out.cache

    def _prefill(self, unique: list[list[int]], index: torch.Tensor, room: int | None = None):
        """Last-position logits, KV cache and mask of the rows `unique[index]` (`shared_heads`),
        each distinct row run once (a GRPO group's G copies of a prompt, the unconditional
        rows of guidance). With `room`, the cache reserves room for that many more tokens
        (decoding only: its in-place writes carry no gradient)."""
        ids, mask = self._left_pad(unique)
        logits, cache = self.forward_logits(ids, mask, keep=1, use_cache=True)
        if len(unique) < len(index):
            index = index.to(ids.device)
            cache.reorder_cache(index)
            logits, mask = logits[index], mask[index]
        return logits, reserve(cache, room) if room is not None else cache, mask

    # ------------------------------------------------------------ text

    @torch.no_grad()
    @gathered_call
    def generate_text(self, prompts, images=None, *, max_new_tokens=64, temperature=1.0, top_k=None,
                      generator=None, prefix="") -> TextSamples:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        tokens, lps, _ = self._decode(self._prompts(prompts, images, prefix), max_new_tokens, temperature,
                                      top_k, generator)
        return samples_at_eos(tokens, lps, self.eos_id, self.decode_text)

    def _decode(self, rows: list[list[int]], max_new_tokens: int, temperature: float = 1.0,
                top_k: int | None = None, generator: torch.Generator | None = None,
                stop_id: int | None = None,
                read_yes_no: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """KV-cached sampling after `rows`: (B x T tokens, their log-probs, and with
        `read_yes_no` the B x T' x 2 raw P(yes), P(no) of every step's distribution). A row
        ends at <eos> or `stop_id`; with `stop_id`, the distribution after the last row's
        stop is computed too (T' = T + 1)."""
        logits, cache, mask = self._prefill(*shared_heads(rows), room=max_new_tokens)
        done = torch.zeros(len(rows), dtype=torch.bool)
        sampled, logps, yes_no = [], [], []
        for _ in range(max_new_tokens):
            raw = self._text_only(logits[:, -1])
            if read_yes_no:
                yes_no.append(self._yes_no(raw))
            step = raw / max(temperature, 1e-6)
            if top_k is not None:
                kth = step.topk(top_k, dim=-1).values[:, -1:]
                step = step.masked_fill(step < kth, float("-inf"))
            logp = F.log_softmax(step, dim=-1)
            token = torch.multinomial(logp.exp().cpu(), 1, generator=generator).squeeze(1).to(logp.device)
            was_done = done.clone()
            token = torch.where(was_done.to(token.device), torch.full_like(token, self.pad_id), token)
            sampled.append(token.cpu())
            logps.append(logp.gather(1, token[:, None]).squeeze(1).cpu())
            done |= (token == self.eos_id).cpu()
            if stop_id is not None:
                done |= (token == stop_id).cpu()
            if done.all() and stop_id is None:
                break
            # The token that ends a row is attended to (what follows a stop is read); pads are not.
            mask = torch.cat([mask, (~was_done).long()[:, None].to(mask.device)], dim=1)
            logits, cache = self.forward_logits(token[:, None], mask, cache=cache, keep=1)
            if done.all():
                if read_yes_no:
                    yes_no.append(self._yes_no(self._text_only(logits[:, -1])))
                break
        return torch.stack(sampled, 1), torch.stack(logps, 1), torch.stack(yes_no, 1) if yes_no else None

    def _text_only(self, logits: torch.Tensor) -> torch.Tensor:
        """Float logits with everything a text position cannot emit pushed to -1e9 (finite,
        so a masked-out placeholder times a zero mask stays 0)."""
        return logits.float().masked_fill(~self.text_vocab.to(logits.device), -1e9)

    def _yes_no(self, logits: torch.Tensor) -> torch.Tensor:
        """B x 2 raw P(yes), P(no) of next-token logits."""
        return F.softmax(logits, dim=-1)[:, [self.yes_id, self.no_id]].cpu()

    @torch.no_grad()
    @gathered_call
    def reasoned_p_yes(self, questions, images, *, reasoning_prefix, answer_prefix, max_new_tokens,
                       stop=None) -> YesNo:
        """One pass: while it writes its reasoning, P(Yes) of every step is kept, and where the
        written tokens are exactly `answer_prefix(reasoning)` the answer's P(Yes) is read from
        the step after them; rows where they are not (cut short, or reasoning that does not
        tokenize back the same) are read by `p_yes` as in the default."""
        stop_ids = self.text_ids(stop) if stop else []
        stop_id = stop_ids[0] if len(stop_ids) == 1 else None
        head = self.text_ids(reasoning_prefix)
        tokens, _, yes_no = self._decode(self._prompts(questions, images, reasoning_prefix), max_new_tokens,
                                         top_k=1, stop_id=stop_id, read_yes_no=True)
        yes, no = torch.full((len(questions),), float("nan")), torch.full((len(questions),), float("nan"))
        prefixes = []
        for i in range(len(questions)):
            written = [int(t) for t in tokens[i] if int(t) != self.pad_id]
            prefixes.append(answer_prefix(self.decode_text(torch.tensor(written))))
            wanted = self.text_ids(prefixes[-1])
            m = len(wanted) - len(head)
            if wanted[:len(head)] == head and 0 <= m < yes_no.shape[1] and written[:m] == wanted[len(head):]:
                yes[i], no[i] = yes_no[i, m]
        missing = [i for i in range(len(questions)) if torch.isnan(yes[i])]
        if missing:
            read = self.p_yes([questions[i] for i in missing], [images[i] for i in missing],
                              prefix=[prefixes[i] for i in missing])
            yes[missing], no[missing] = read.raw_yes.float().cpu(), read.raw_no.float().cpu()
        return YesNo(yes / (yes + no).clamp(min=1e-12), yes, no)

    def decode_text(self, token_ids: torch.Tensor) -> str:
        ids = [int(t) for t in token_ids if int(t) not in (self.eos_id, self.pad_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=False).strip()

    @root_call
    def completion_logprobs(self, prompts, completions, images=None, prefix="",
                            temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        heads = self._prompts(prompts, images, prefix)
        width = max((len(c) for c in completions), default=0)
        if width == 0:
            empty = torch.zeros((len(heads), 0), device=self.device)
            return empty, empty.bool()
        unique, index = shared_heads(heads)
        # Sharded, every process must run the same passes: always the grouped path's two.
        if len(unique) < len(heads) or self._sharded is not None:
            return self._grouped_logprobs(unique, index, completions, temperature)
        rows = [h + c.tolist() for h, c in zip(heads, completions, strict=True)]
        ids, mask = self._left_pad(rows)
        logits, _ = self.forward_logits(ids, mask, keep=width + 1)
        return completion_logps(self._text_only(logits), ids, completions, temperature)

    def _grouped_logprobs(self, unique: list[list[int]], index: torch.Tensor, completions,
                          temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Completion log-probs when rows share their prompt (a GRPO group): each distinct
        prompt is run once, with gradient, and its KV cache is repeated for its completions,
        so a two-image prompt of ~530 tokens is not recomputed G times."""
        logits, cache, mask = self._prefill(unique, index)
        comp, comp_mask = right_pad(completions, self.pad_id, self.device)
        tail, _ = self.forward_logits(comp, torch.cat([mask, comp_mask], 1), cache=cache)
        # Token j is predicted at position j - 1: the prompt's last position for j = 0.
        logits = self._text_only(torch.cat([logits, tail[:, :-1]], 1)) / temperature
        logp = F.log_softmax(logits, dim=-1).gather(2, comp[..., None]).squeeze(2)
        return right_align(logp, [len(c) for c in completions])

    @torch.no_grad()
    @gathered_call
    def p_yes(self, questions, images, prefix="") -> YesNo:
        ids, mask = self._left_pad(self._prompts(questions, images, prefix))
        logits, _ = self.forward_logits(ids, mask, keep=1)
        probs = F.softmax(self._text_only(logits[:, -1]), dim=-1)
        yes, no = probs[:, self.yes_id], probs[:, self.no_id]
        return YesNo(yes / (yes + no).clamp(min=1e-12), yes, no)

    # ------------------------------------------------------------ images

    @torch.no_grad()
    @gathered_call
    def generate_image_ids(self, texts: list[str], *, guidance_scale: float | None = None,
                           temperature: float | None = None, seed: int | list[int] = 0) -> torch.Tensor:
        """N x image_tokens sampled code ids, conditional and unconditional rows in one batch."""
        scale = self.config.guidance_scale if guidance_scale is None else guidance_scale
        temperature = self.config.image_temperature if temperature is None else temperature
        seeds = [seed + i for i in range(len(texts))] if isinstance(seed, int) else list(seed)
        if len(seeds) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(seeds)} seeds")
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        n = len(texts)
        rows = [self.user_turn(t) + [self.boi_id] for t in texts]
        use_cfg = scale != 1.0
        if use_cfg:
            rows += [self.user_turn("") + [self.boi_id]] * n
        logits, cache, mask = self._prefill(*shared_heads(rows), room=self.config.image_tokens)
        lo, hi = self.code_offset, self.code_offset + self.config.codebook_size
        out = []
        for k in range(self.config.image_tokens):
            step = logits[:, -1, lo:hi].float()
            if use_cfg:
                step = step[n:] + scale * (step[:n] - step[n:])
            probs = F.softmax(step / max(temperature, 1e-6), dim=-1).cpu()
            code = torch.cat([torch.multinomial(probs[i], 1, generator=g)
                              for i, g in enumerate(generators)]) + lo
            out.append(code)
            if k + 1 == self.config.image_tokens:
                break
            token = torch.cat([code, code]) if use_cfg else code
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            index = torch.full((len(token), 1), k, device=self.device)  # the code just drawn
            logits, cache = self.forward_logits(token[:, None].to(self.device), mask, cache=cache, keep=1,
                                                image_index=index)
        return torch.stack(out, 1)

    def generate_images(self, texts, *, guidance_scale=None, temperature=None, seed=0) -> ImageList:
        return self.decode_images(self.generate_image_ids(texts, guidance_scale=guidance_scale,
                                                          temperature=temperature, seed=seed))
