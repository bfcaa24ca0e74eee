"""Contract tests of the model interface on a tiny random mini model (no trained weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seer.data.mix import vocabulary_corpus
from seer.models import load_model
from seer.models.interface import ModelError, UnifiedModel
from seer.models.mini.model import MiniConfig, MiniUMM, new_vq
from seer.world.descriptors import parse
from seer.world.render import render

# 8x8 pixel patches: 64 tokens an image keep the tests fast.
TINY = MiniConfig.tiny()
TEXT = "a large red circle on the left, on a blue background"
QUESTION = "does it look nocturnal ?"


@pytest.fixture(scope="module")
def model() -> MiniUMM:
    return MiniUMM.create(vocabulary_corpus(), TINY, seed=0).eval()


@pytest.fixture(scope="module")
def image():
    return render(parse(TEXT))


def _zero_grad(model: MiniUMM) -> None:
    for p in model.trainable_parameters():
        p.grad = None


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_generate_text_shapes_and_seed(model, image):
    prompts = [QUESTION, "describe the picture ."]
    images = [[image], [image, image]]
    a = model.generate_text(prompts, images, max_new_tokens=6, generator=_seeded(1))
    b = model.generate_text(prompts, images, max_new_tokens=6, generator=_seeded(1))
    assert len(a.texts) == len(a.token_ids) == len(a.logprobs) == len(a.truncated) == 2
    for ids, lps, cut in zip(a.token_ids, a.logprobs, a.truncated, strict=True):
        assert ids.shape == lps.shape and 1 <= len(ids) <= 6
        assert cut == (int(ids[-1]) != model.eos_id)
        assert (lps <= 0).all()
    assert all(torch.equal(x, y) for x, y in zip(a.token_ids, b.token_ids, strict=True))


def test_sampled_logprobs_equal_a_manual_forward_pass(model, image):
    samples = model.generate_text([QUESTION], [[image]], max_new_tokens=5, generator=_seeded(2))
    completion = samples.token_ids[0]
    ids = torch.tensor([model.user_turn(QUESTION, list(model.encode_images([image]))) + completion.tolist()])
    with torch.no_grad():
        logits = model.lm(inputs_embeds=model.embed(ids)).logits[0].float()
    logits = logits.masked_fill(~model.text_vocab, -1e9)  # text positions write text only
    start = ids.shape[1] - len(completion)
    manual = F.log_softmax(logits[start - 1:-1], -1).gather(1, completion[:, None]).squeeze(1)
    assert torch.allclose(samples.logprobs[0], manual, atol=1e-4)


def test_text_positions_never_write_image_codes_or_markers(model, image):
    """An untrained model sampled hot would write image codes and markers unless text
    positions are restricted to words and <eos>; scoring agrees."""
    ids = torch.tensor([model.user_turn(QUESTION, list(model.encode_images([image])))])
    with torch.no_grad():
        unrestricted = F.softmax(model.lm(inputs_embeds=model.embed(ids)).logits[0, -1].float() / 2.0, -1)
    assert unrestricted[~model.text_vocab].sum() > 0.05  # the check below is not vacuous
    out = model.generate_text([QUESTION] * 8, [[image]] * 8, max_new_tokens=12, temperature=2.0,
                              generator=_seeded(3))
    written = torch.cat(out.token_ids)
    assert model.text_vocab[written].all()
    code = torch.tensor([model.code_offset + 1, model.eos_id])
    logp, _ = model.completion_logprobs([QUESTION], [code], [[image]])
    assert logp[0, 0] < -1e6 and logp[0, 1] > -1e6
    for marker in (model.boi_id, model.eoi_id, model.user_id, model.assistant_id, model.pad_id):
        assert not model.text_vocab[marker]
    assert model.text_vocab[[model.eos_id, model.yes_id, model.no_id]].all()


def test_completion_logprobs_have_gradient_and_match_each_row_alone(model, image):
    prompts = [QUESTION, "what color is the background ?"]
    completions = [torch.tensor([model.yes_id, model.eos_id]), torch.tensor([model.eos_id])]
    logp, mask = model.completion_logprobs(prompts, completions, [[image], [image]])
    assert logp.shape == mask.shape == (2, 2)
    assert mask.tolist() == [[True, True], [False, True]]
    assert logp.requires_grad
    logp.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trainable_parameters())
    _zero_grad(model)
    # Left padding must not change a row's log-probs.
    alone, _ = model.completion_logprobs(prompts[1:], completions[1:], [[image]])
    assert torch.allclose(alone[0, -1], logp[1, -1], atol=1e-4)


def test_a_shared_prompt_is_run_once_with_the_same_logprobs_and_gradient(model, image):
    """A GRPO group repeats its prompt: scoring runs it once and repeats its KV cache; the
    log-probs and the gradient equal scoring every row on its own."""
    _zero_grad(model)
    prompts = [QUESTION, QUESTION, QUESTION, "what color is the background ?"]
    images = [[image], [image], [image], [image, image]]
    completions = [torch.tensor([model.yes_id, model.eos_id]), torch.tensor([model.eos_id]),
                   torch.tensor([model.no_id, model.yes_id, model.eos_id]), torch.tensor([model.no_id])]
    grouped, mask = model.completion_logprobs(prompts, completions, images)
    grouped.sum().backward()
    grads = [p.grad.clone() for p in model.trainable_parameters()]
    _zero_grad(model)
    assert mask.tolist() == [[False, True, True], [False, False, True], [True, True, True],
                             [False, False, True]]
    rows = []
    for i in range(4):
        alone, _ = model.completion_logprobs(prompts[i:i + 1], completions[i:i + 1], images[i:i + 1])
        alone.sum().backward()
        rows.append(F.pad(alone[0], (3 - alone.shape[1], 0)))
    assert torch.allclose(grouped, torch.stack(rows), atol=1e-4)
    for a, b in zip(grads, (p.grad for p in model.trainable_parameters()), strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    _zero_grad(model)


def test_a_shared_prompt_samples_like_distinct_prompts(model, image):
    """Generation prefills a repeated prompt once: greedy completions of a group equal the
    completion of the prompt alone."""
    group = model.generate_text([QUESTION] * 3 + ["describe it ."], [[image]] * 3 + [[image]],
                                max_new_tokens=5, top_k=1)
    alone = model.generate_text([QUESTION], [[image]], max_new_tokens=5, top_k=1)
    for ids in group.token_ids[:3]:
        assert torch.equal(ids, alone.token_ids[0])


def test_image_positions_count_codes_from_each_boi(image):
    model = MiniUMM.create(vocabulary_corpus(), TINY, seed=0).eval()
    with torch.no_grad():
        for p in model.image_positions.parameters():
            p.normal_()
    codes = list(model.encode_images([image, image]))
    row = torch.tensor([model.user_turn(QUESTION, codes)])
    embeds = model.embed(row) - model.lm.get_input_embeddings()(row)
    starts = [i + 1 for i, t in enumerate(row[0].tolist()) if t == model.boi_id]
    n = TINY.image_tokens
    for start in starts:  # each image's k-th code gets row k // side and column k % side
        assert torch.allclose(embeds[0, start:start + n], model.image_positions(torch.arange(n)))
    text = [i for i in range(row.shape[1]) if not any(s <= i < s + n for s in starts)]
    assert embeds[0, text].abs().max() == 0


def test_decoding_codes_one_at_a_time_matches_a_full_forward_pass():
    model = MiniUMM.create(vocabulary_corpus(), TINY, seed=0).eval()
    with torch.no_grad():
        for p in model.image_positions.parameters():
            p.normal_()
    codes = model.generate_image_ids([TEXT], seed=3, guidance_scale=1.0)[0]
    row = torch.tensor([model.user_turn(TEXT) + [model.boi_id] + codes.tolist()])
    with torch.no_grad():
        full = F.log_softmax(model.lm(inputs_embeds=model.embed(row)).logits[0].float(), -1)
        ids, mask = row[:, :-len(codes)], torch.ones_like(row[:, :-len(codes)])
        logits, cache = model.forward_logits(ids, mask, keep=1, use_cache=True)
        for k, code in enumerate(codes[:-1].tolist()):
            mask = torch.ones((1, mask.shape[1] + 1), dtype=torch.long)
            logits, cache = model.forward_logits(torch.tensor([[code]]), mask, cache=cache, keep=1,
                                                 image_index=torch.tensor([[k]]))
            assert torch.allclose(F.log_softmax(logits[0, -1].float(), -1), full[ids.shape[1] + k], atol=1e-4)


def test_positions_save_load_and_old_folders_load_without_them(model, tmp_path):
    fresh = MiniUMM.create(vocabulary_corpus(), TINY, seed=0)
    with torch.no_grad():
        fresh.image_positions.rows.fill_(0.5)
    fresh.save_pretrained(tmp_path / "new")
    loaded = MiniUMM.from_pretrained(tmp_path / "new")
    assert torch.equal(loaded.image_positions.rows, fresh.image_positions.rows)
    old = MiniUMM.create(vocabulary_corpus(), MiniConfig.tiny(image_positions=False), seed=0)
    old.save_pretrained(tmp_path / "old")
    assert MiniUMM.from_pretrained(tmp_path / "old").image_positions is None
    widened = MiniUMM.from_pretrained(tmp_path / "old", image_positions=True)  # pretrain's `init`
    assert widened.image_positions.rows.abs().max() == 0
    (tmp_path / "new" / "image_positions.safetensors").unlink()
    with pytest.raises(ModelError, match="missing image_positions.safetensors"):
        MiniUMM.from_pretrained(tmp_path / "new")


@pytest.mark.parametrize("words", [0, 2, 4, 30])
def test_reasoned_p_yes_in_one_pass_equals_writing_then_reading(model, image, words, monkeypatch):
    """The one-pass P(Yes) equals the interface's default (write the reasoning, then run
    `p_yes` after the answer prefix); only rows it cannot read in the pass go to `p_yes`."""
    other = render(parse("a small blue square at the top, on a white background"))
    questions, images = [QUESTION, "is the first image darker ?"], [[image, other], [other, image]]

    def prefix(thought: str) -> str:  # the first `words` words the model wrote
        return " ".join(["<think>", *thought.split()[:words]])

    kwargs = dict(reasoning_prefix="<think>", answer_prefix=prefix, max_new_tokens=6)
    default = UnifiedModel.reasoned_p_yes(model, questions, images, **kwargs)
    calls = []
    p_yes = model.p_yes
    monkeypatch.setattr(model, "p_yes", lambda q, *a, **k: calls.append(len(q)) or p_yes(q, *a, **k))
    fast = model.reasoned_p_yes(questions, images, **kwargs)
    assert torch.allclose(fast.p_yes, default.p_yes, atol=1e-4)
    assert torch.allclose(fast.raw_yes, default.raw_yes, atol=1e-5)
    # Up to 4 of its own words: read in the pass. All it wrote (6 tokens, no stop): the
    # distribution after its last token was never computed, so p_yes reads both rows.
    assert calls == ([] if words < 30 else [2])


def test_reasoned_p_yes_stops_writing_at_the_stop_word(model, image):
    """A row that wrote `stop` stops; P(Yes) after the stop is still read in the pass."""
    other = render(parse("a small blue square at the top, on a white background"))
    questions, images = [QUESTION, QUESTION], [[image, other], [other, image]]
    first = model.generate_text(questions, images, max_new_tokens=1, top_k=1, prefix="<think>").texts
    kwargs = dict(reasoning_prefix="<think>", answer_prefix=lambda t: " ".join(["<think>", *t.split()[:1]]),
                  max_new_tokens=6)
    default = UnifiedModel.reasoned_p_yes(model, questions, images, **kwargs)
    fast = model.reasoned_p_yes(questions, images, stop=first[0], **kwargs)
    assert torch.allclose(fast.p_yes, default.p_yes, atol=1e-4)


def test_p_yes_reads_the_next_token_after_the_prompt(model, image):
    other = render(parse("a small green cross at the top, on a white background"))
    result = model.p_yes([QUESTION, QUESTION], [[image, other], [other, image]], prefix="<answer>")
    ids = torch.tensor([model.user_turn(QUESTION, list(model.encode_images([image, other])), "<answer>")])
    with torch.no_grad():
        logits = model.lm(inputs_embeds=model.embed(ids)).logits[0, -1].float()
    probs = F.softmax(logits.masked_fill(~model.text_vocab, -1e9), -1)  # over what text may write
    assert torch.allclose(result.raw_yes[0], probs[model.yes_id], atol=1e-5)
    assert torch.allclose(result.raw_no[0], probs[model.no_id], atol=1e-5)
    assert torch.allclose(result.p_yes[0], probs[model.yes_id] / (probs[model.yes_id] + probs[model.no_id]))
    assert ((result.p_yes > 0) & (result.p_yes < 1)).all()
    # The two image orders are different inputs.
    assert not torch.allclose(result.raw_yes[0], result.raw_yes[1])


def test_generate_images_is_seeded_and_batched(model):
    texts = [TEXT, "a small green cross at the top, on a white background", ""]
    a = model.generate_images(texts, seed=3)
    b = model.generate_images(texts, seed=3)
    c = model.generate_images(texts, seed=4)
    assert [im.size for im in a] == [(64, 64)] * 3
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, c, strict=True))
    ids = model.generate_image_ids(texts, seed=3, guidance_scale=1.0)
    assert ids.shape == (3, TINY.image_tokens)
    assert ((ids >= model.code_offset) & (ids < model.code_offset + TINY.codebook_size)).all()


def test_images_round_trip_through_codes(model, image):
    codes = model.encode_images([image, image])
    assert codes.shape == (2, TINY.image_tokens)
    decoded = model.decode_images(codes)
    assert decoded[0].size == (64, 64)
    assert np.array_equal(np.asarray(decoded[0]), np.asarray(decoded[1]))


def test_save_and_load_round_trip(model, tmp_path, image):
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(path=tmp_path / "m")
    assert isinstance(loaded, MiniUMM)
    for name, param in model.lm.state_dict().items():
        assert torch.equal(param, loaded.lm.state_dict()[name]), name
    assert torch.equal(model.encode_images([image]), loaded.encode_images([image]))
    a = model.p_yes([QUESTION], [[image]]).p_yes
    # Equal weights; the loaded model's logits may differ in the last float bit (3e-8).
    assert torch.allclose(a, loaded.p_yes([QUESTION], [[image]]).p_yes, atol=1e-6, rtol=0)


def test_half_precision_save_is_smaller_and_loads_as_float32(model, tmp_path):
    model.save_pretrained(tmp_path / "full")
    model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    size = lambda d: sum(f.stat().st_size for f in d.rglob("*.safetensors"))  # noqa: E731
    assert size(tmp_path / "half") < 0.6 * size(tmp_path / "full")
    loaded = MiniUMM.from_pretrained(tmp_path / "half")
    assert next(loaded.lm.parameters()).dtype == torch.float32
    assert next(model.lm.parameters()).dtype == torch.float32  # saving did not change the live model


def test_lora_trains_only_adapters(tmp_path, image):
    model = MiniUMM.create(vocabulary_corpus(), TINY, seed=0)
    total = sum(p.numel() for p in model.trainable_parameters())
    model.enable_lora(r=4)
    trainable = model.trainable_parameters()
    assert 0 < sum(p.numel() for p in trainable) < total / 5
    before = model.p_yes([QUESTION], [[image]]).raw_yes
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    for _ in range(3):
        logp, _ = model.completion_logprobs([QUESTION], [torch.tensor([model.yes_id])], [[image]])
        (-logp.sum()).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert model.p_yes([QUESTION], [[image]]).raw_yes > before
    model.save_pretrained(tmp_path / "merged")  # LoRA merged into plain weights
    assert not any("lora" in k for k in MiniUMM.from_pretrained(tmp_path / "merged").lm.state_dict())


@pytest.mark.parametrize("missing", ["mini.json", "lm/config.json", "tokenizer/tokenizer.json"])
def test_incomplete_folder_is_a_one_line_error(model, tmp_path, missing):
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / missing).unlink()
    with pytest.raises(ModelError, match=f"missing {missing}") as err:
        MiniUMM.from_pretrained(tmp_path / "m")
    assert "\n" not in str(err.value)


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown backend 'dalle'"):
        load_model("dalle")
    with pytest.raises(ModelError, match="no such model folder"):
        load_model(path=tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot tell the backend"):
        load_model(path=tmp_path / "empty")


def test_an_image_does_not_depend_on_the_rest_of_its_batch(model):
    other = "a small green cross at the top, on a white background"
    together = model.generate_image_ids([TEXT, other], seed=7)
    alone = model.generate_image_ids([TEXT], seed=7)
    assert torch.equal(together[0], alone[0])


def test_sampling_temperature_is_applied_when_scoring(model, image):
    samples = model.generate_text([QUESTION], [[image]], max_new_tokens=4, temperature=0.7,
                                  generator=_seeded(5))
    logp, _ = model.completion_logprobs([QUESTION], samples.token_ids, [[image]], temperature=0.7)
    assert torch.allclose(logp[0, -len(samples.token_ids[0]):], samples.logprobs[0], atol=1e-4)


def test_saving_in_half_precision_leaves_the_live_weights_exact(model, tmp_path):
    before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    assert all(torch.equal(before[k], v) for k, v in model.lm.state_dict().items())


def test_corrupt_weights_are_a_one_line_error(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "lm" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot load the mini model") as err:
        MiniUMM.from_pretrained(tmp_path / "m")
    assert "\n" not in str(err.value)


def test_zero_new_tokens_is_refused(model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate_text([QUESTION], max_new_tokens=0)


def test_a_local_tokenizer_code_depends_on_its_patch_alone(model):
    rng = np.random.default_rng(0)
    palettes = torch.from_numpy(rng.integers(0, 13, size=(1, 64, 64)))
    codes = model.vq.encode(palettes)
    changed = palettes.clone()
    changed[0, 8:16, 16:24] = (changed[0, 8:16, 16:24] + 1) % 13  # patch (row 1, column 2)
    differs = (model.vq.encode(changed) != codes).view(8, 8)
    assert not differs.flatten()[[k for k in range(64) if k != 1 * 8 + 2]].any()
    # The decoder reads the whole code grid and draws the whole image.
    assert model.vq.decode(codes).shape == (1, 64, 64)


def _saved_before(model: MiniUMM, key: str, folder) -> MiniUMM:
    """`model` saved as a folder from before mini.json had `key`, loaded back."""
    model.save_pretrained(folder)
    config = folder / "mini.json"
    raw = json.loads(config.read_text())
    del raw[key]
    config.write_text(json.dumps(raw))
    return MiniUMM.from_pretrained(folder)


def test_folders_from_before_local_tokenizers_load_as_convolutional(tmp_path, image):
    conv = MiniUMM.create(vocabulary_corpus(), MiniConfig.tiny(vq_local=False), seed=0)
    loaded = _saved_before(conv, "vq_local", tmp_path / "old")
    assert not loaded.vq.local
    assert torch.equal(loaded.encode_images([image]), conv.encode_images([image]))


@pytest.mark.parametrize("local_norm", [True, False])
def test_a_convolutional_code_depends_on_its_neighbourhood_only_under_local_norm(local_norm):
    vq = new_vq(MiniConfig(image_size=64, vq_local_norm=local_norm)).eval()  # a 16x16 grid
    assert any(isinstance(m, torch.nn.GroupNorm) for m in vq.vq.encoder.modules()) != local_norm
    palettes = torch.from_numpy(np.random.default_rng(0).integers(0, 13, size=(1, 64, 64)))
    changed = palettes.clone()
    changed[0, :8, :8] = (changed[0, :8, :8] + 1) % 13  # the top left corner
    with torch.no_grad():
        far = (vq._latents(palettes) - vq._latents(changed))[..., 12:, 12:].abs().max()
    # Group norm's image-wide statistics carry the corner to the far side of the image.
    assert (far == 0) == local_norm


def test_folders_from_before_local_norm_load_with_group_norm(tmp_path, image):
    conv = MiniUMM.create(vocabulary_corpus(), MiniConfig.tiny(vq_local=False, vq_local_norm=False), seed=0)
    loaded = _saved_before(conv, "vq_local_norm", tmp_path / "old")
    assert not loaded.config.vq_local_norm
    assert torch.equal(loaded.encode_images([image]), conv.encode_images([image]))
    fresh = MiniUMM.create(vocabulary_corpus(), MiniConfig.tiny(vq_local=False, vq_local_norm=True), seed=0)
    fresh.save_pretrained(tmp_path / "new")
    again = MiniUMM.from_pretrained(tmp_path / "new")
    assert again.config.vq_local_norm
    assert torch.equal(again.encode_images([image]), fresh.encode_images([image]))


def test_each_grid_cell_is_one_text_token(model):
    tokens = model.tokenizer.tokenize("a red cross at the top left , at the top , At the Bottom right")
    assert tokens == ["a", "red", "cross", "at", "the", "top left", ",", "at", "the", "top", ",",
                      "at", "the", "bottom right"]
    assert "<unk>" not in model.tokenizer.tokenize(" ".join(vocabulary_corpus()[:200]))
    text = "a small blue square at the bottom left, on a white background"
    assert model.tokenizer.decode(model.tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_folders_from_before_merged_phrases_keep_their_tokenizer(tmp_path):
    old = MiniUMM.create(vocabulary_corpus(), MiniConfig.tiny(text_phrases=()), seed=0)
    loaded = _saved_before(old, "text_phrases", tmp_path / "old")
    assert loaded.config.text_phrases == ()
    assert loaded.tokenizer.tokenize("at the top left") == ["at", "the", "top", "left"]
