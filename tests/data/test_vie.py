"""VIE sets: triples, images, evaluator items, difficulty, loading; on a tiny random mini
model and on fake generators (an oracle that renders what it can read, one that ignores text)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from PIL import Image

from seer.data import templates as T
from seer.data.mix import vocabulary_corpus
from seer.data.vie import (
    KINDS,
    ORDERS,
    SPLITS,
    VIEConfig,
    as_dataset,
    build_vie,
    config_hash,
    load_items,
    load_manifest,
    load_samples,
    open_images,
    read_user_jsonl,
)
from seer.models.mini.model import MiniConfig, MiniUMM
from seer.world.descriptors import DescriptorError, parse
from seer.world.instructions import load_instructions
from seer.world.render import render

TINY = MiniConfig.tiny()
SMALL = dict(n_train=3, n_validation=2, n_test_id=2, n_test_ood=2, require_margin=False,
             difficulty_samples=2, batch_size=4, max_new_tokens=8)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vie-model") / "tiny"
    MiniUMM.create(vocabulary_corpus(), TINY, seed=0).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def built(model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vie") / "set"
    return build_vie(VIEConfig(out=str(out), model=str(model_dir), **SMALL))


class LiteralGenerator:
    """Renders exactly the literal part of a text: the oracle elaboration comes out right,
    the baseline "prompt, instruction" comes out as the plain prompt (the cognitive gap)."""

    def __init__(self, ignore_text_calls: int = 0):
        self.calls = 0
        self.ignore_text_calls = ignore_text_calls

    def generate_images(self, texts, *, guidance_scale=None, temperature=1.0, seed=0):
        self.calls += 1
        if self.calls <= self.ignore_text_calls:
            return [render(parse("a small red circle in the center, on a white background"))] * len(texts)
        return [render(self._literal(t)) for t in texts]

    @staticmethod
    def _literal(text):
        while True:
            try:
                return parse(text)
            except DescriptorError:
                text = text.rsplit(", ", 1)[0]


class IgnoresText(LiteralGenerator):
    def __init__(self):
        super().__init__(ignore_text_calls=10**9)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------- items

def test_items_are_two_kinds_by_two_orders_with_labels(built):
    manifest = load_manifest(built)
    for split, n in zip(SPLITS, (3, 2, 2, 2), strict=True):
        samples, items = load_samples(built, split), load_items(built, split)
        assert len(samples) == n and len(items) == 4 * n
        assert manifest["counts"][split] == {"samples": n, "items": 4 * n}
        by_id = {s["id"]: s for s in samples}
        seen = {(it["sample_id"], it["kind"], it["order"]) for it in items}
        assert seen == {(s, k, o) for s in by_id for k in KINDS for o in ORDERS}
        for it in items:
            sample = by_id[it["sample_id"]]
            pair = [sample["pos_image"], sample["neg_image"]]
            assert it["images"] == (pair if it["order"] == "positive_first" else pair[::-1])
            assert it["label"] == ("yes" if it["order"] == "positive_first" else "no")
            text = sample["instruction"] if it["kind"] == "instruction" else sample["elaboration"]
            assert it["question"] == T.pair_question(it["kind"], text)
            assert it["question"].endswith(T.THINK_FIRST)
            assert it["margin"] == sample["margin"]
            if split == "train":
                assert it["pass_rate"] in (0.0, 0.5, 1.0) and it["difficulty"] == 1.0 - it["pass_rate"]
            else:
                assert it["pass_rate"] is None and it["difficulty"] is None
        for s in samples:
            assert s["baseline"] == T.baseline_text(s["prompt"], s["instruction"])
            assert (built / s["pos_image"]).is_file() and (built / s["neg_image"]).is_file()
            assert s["margin"] == s["pos_satisfaction"] - s["neg_satisfaction"]


def test_same_seed_writes_the_same_bytes(built, model_dir, tmp_path):
    again = build_vie(VIEConfig(out=str(tmp_path / "again"), model=str(model_dir), **SMALL))
    first, second = _files(built), _files(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    assert "config.json" in first and "images/train/train-00000_pos.png" in first


def test_config_hash_follows_the_config_not_the_folder(built, model_dir, tmp_path):
    cfg = VIEConfig(out=str(built), model=str(model_dir), **SMALL)
    assert load_manifest(built)["config_hash"] == config_hash(cfg)
    assert config_hash(VIEConfig(out="elsewhere", model=str(model_dir), **SMALL)) == config_hash(cfg)
    reseeded = VIEConfig(out=str(built), model=str(model_dir), **{**SMALL, "seed": 1})
    assert config_hash(reseeded) != config_hash(cfg)
    other = build_vie(VIEConfig(out=str(tmp_path / "s1"), model=str(model_dir),
                                **{**SMALL, "difficulty_samples": 1}))
    assert load_manifest(other)["config_hash"] != load_manifest(built)["config_hash"]
    saved = json.loads((built / "config.json").read_text())
    assert "out" not in saved and saved["n_train"] == 3 and saved["model"] == str(model_dir)


# ---------------------------------------------------------------- the world

def test_world_split_rule_and_no_reused_train_pairs(tmp_path):
    out = build_vie(VIEConfig(out=str(tmp_path / "w"), n_train=20, n_validation=5, n_test_id=10,
                              n_test_ood=20, difficulty_samples=0), model=LiteralGenerator())
    train_texts = {i.text for i in load_instructions().split("train")}
    rows = {split: load_samples(out, split) for split in SPLITS}
    for split, samples in rows.items():
        for s in samples:
            if split == "test_ood":
                assert s["instruction"] not in train_texts
                assert s["instruction_split"] in ("heldout", "composition")
            else:
                assert s["instruction"] in train_texts and s["instruction_split"] == "train"
            assert s["instruction_difficulty"] in ("simple", "hard")
    train_pairs = {(s["prompt"], s["instruction"]) for s in rows["train"]}
    for split in ("validation", "test_id", "test_ood"):
        assert not train_pairs & {(s["prompt"], s["instruction"]) for s in rows[split]}
    prompts = [s["prompt"] for samples in rows.values() for s in samples]
    assert len(set(prompts)) == len(prompts)


def test_oracle_generator_gives_positive_margins(tmp_path):
    out = build_vie(VIEConfig(out=str(tmp_path / "m"), n_train=8, n_validation=2, n_test_id=2,
                              n_test_ood=8, difficulty_samples=0), model=LiteralGenerator())
    for split in SPLITS:
        for s in load_samples(out, split):
            assert s["margin"] > 0 and s["pos_satisfaction"] == 1.0 and s["draw"] == 0
            assert s["pos_fidelity"] == 1.0
    assert load_manifest(out)["ground_truth"] is True


def test_contrast_items_ask_another_instruction_labelled_by_the_analyzer(tmp_path):
    """contrast_items: each train pair is also asked about a training instruction of another
    family; the label says which image the analyzer finds meets it better, in both orders.
    Held-out splits keep the paper's items only, and the option is off by default."""
    from seer.world.analyzer import analyze_scene

    instructions = load_instructions()
    cfg = VIEConfig(out=str(tmp_path / "c"), n_train=12, n_validation=2, n_test_id=2, n_test_ood=2,
                    difficulty_samples=0, contrast_items=True)
    out = build_vie(cfg, model=LiteralGenerator())
    samples = {s["id"]: s for s in load_samples(out, "train")}
    contrast = [it for it in load_items(out, "train") if it["kind"] == "contrast"]
    assert len(contrast) >= len(samples)  # at least half the pairs differ on another instruction
    for item in contrast:
        sample = samples[item["sample_id"]]
        asked = instructions.by_text(item["instruction"])
        own = instructions.by_text(sample["instruction"])
        assert asked.split == "train" and asked.families != own.families
        assert item["question"] == T.pair_question("instruction", item["instruction"])
        first, second = (Image.open(out / p).convert("RGB") for p in item["images"])
        better_first = asked.satisfaction(analyze_scene(first)) > asked.satisfaction(analyze_scene(second))
        assert item["label"] == (T.YES if better_first else T.NO)
        gap = sample["contrast_pos_satisfaction"] - sample["contrast_neg_satisfaction"]
        assert item["margin"] == abs(gap) > 0
    assert {it["order"] for it in contrast} == set(ORDERS)
    for split in ("validation", "test_id", "test_ood"):
        assert {it["kind"] for it in load_items(out, split)} == set(KINDS)
    default = build_vie(VIEConfig(out=str(tmp_path / "d"), n_train=4, n_validation=0, n_test_id=0,
                                  n_test_ood=0, difficulty_samples=0), model=LiteralGenerator())
    assert {it["kind"] for it in load_items(default, "train")} == set(KINDS)
    assert "contrast_instruction" in as_dataset(out, "train", "samples").features


def test_failed_samples_are_drawn_again(tmp_path):
    # The first call (positives and negatives of the first train batch) ignores the text.
    out = build_vie(VIEConfig(out=str(tmp_path / "r"), n_train=3, n_validation=1, n_test_id=1,
                              n_test_ood=1, difficulty_samples=0),
                    model=LiteralGenerator(ignore_text_calls=1))
    train = load_samples(out, "train")
    assert [s["draw"] for s in train] == [1, 1, 1]
    assert all(s["margin"] > 0 for s in train)


class SeedRecorder(LiteralGenerator):
    def __init__(self):
        super().__init__()
        self.seen = []  # (text, seed) of every image asked for

    def generate_images(self, texts, *, guidance_scale=None, temperature=1.0, seed=0):
        self.seen += zip(texts, seed, strict=True)
        return super().generate_images(texts, guidance_scale=guidance_scale, seed=seed)


def test_a_samples_images_share_its_own_seed_whatever_the_batch(tmp_path):
    seen = {}
    for batch in (1, 64):
        model = SeedRecorder()
        build_vie(VIEConfig(out=str(tmp_path / str(batch)), n_train=5, n_validation=1, n_test_id=2,
                            n_test_ood=2, difficulty_samples=0, render_batch_size=batch), model=model)
        seen[batch] = model.seen
        assert model.calls == (10 if batch == 1 else 4)  # one call per batch of every split
    assert sorted(seen[1]) == sorted(seen[64])
    samples = [s for split in ("train", "test_id") for s in load_samples(tmp_path / "1", split)]
    seeds = dict(seen[1])
    assert all(seeds[s["elaboration"]] == seeds[s["baseline"]] for s in samples)
    assert len({seeds[s["baseline"]] for s in samples}) == len(samples)


class AlwaysYes(LiteralGenerator):
    """An evaluator that always answers yes, in the right format."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def generate_text(self, prompts, images=None, *, max_new_tokens=64, temperature=1.0, generator=None,
                      **_):
        self.asked.append((len(prompts), [len(i) for i in images], max_new_tokens, temperature))
        return types.SimpleNamespace(texts=["<think> the first image fits </think> <answer> Yes </answer>"]
                                     * len(prompts))


def test_pass_rate_is_the_base_evaluators_accuracy_over_k_samples(tmp_path):
    model = AlwaysYes()
    out = build_vie(VIEConfig(out=str(tmp_path / "d"), n_train=3, n_validation=1, n_test_id=0, n_test_ood=0,
                              difficulty_samples=3, batch_size=5, max_new_tokens=7), model=model)
    items = load_items(out, "train")
    assert {it["order"]: it["pass_rate"] for it in items} == {"positive_first": 1.0, "negative_first": 0.0}
    assert all(it["difficulty"] == 1.0 - it["pass_rate"] for it in items)
    # 12 items in batches of 5, three times, two images each, temperature 1.
    assert [a[0] for a in model.asked] == [5, 5, 2] * 3
    assert all(set(a[1]) == {2} and a[2:] == (7, 1.0) for a in model.asked)
    assert all(it["pass_rate"] is None for it in load_items(out, "validation"))


def test_a_generator_that_ignores_text_is_a_one_line_error(tmp_path):
    cfg = VIEConfig(out=str(tmp_path / "x"), n_train=2, n_validation=0, n_test_id=0, n_test_ood=0,
                    difficulty_samples=0, max_draws_per_sample=3)
    with pytest.raises(ValueError) as err:
        build_vie(cfg, model=IgnoresText())
    assert "cannot render elaborations" in _one_line(err) and "in 3 draws" in str(err.value)
    assert not (tmp_path / "x").exists()


def test_without_require_margin_the_pairs_are_kept(tmp_path):
    cfg = VIEConfig(out=str(tmp_path / "k"), n_train=2, n_validation=0, n_test_id=0, n_test_ood=0,
                    difficulty_samples=0, require_margin=False)
    samples = load_samples(build_vie(cfg, model=IgnoresText()), "train")
    assert [s["margin"] for s in samples] == [0.0, 0.0]


# ---------------------------------------------------------------- user JSONL

def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"prompt": "an empty swing set", "instruction": "make it scary, yet cute",
        "elaboration": "an empty swing set with skull motifs, big friendly eyes, pastel colors"}


@pytest.mark.parametrize("bad, expected", [
    ({k: v for k, v in GOOD.items() if k != "elaboration"}, "missing field 'elaboration'"),
    ({**GOOD, "instruction": "  "}, "field 'instruction' must be a non-empty string"),
    ({**GOOD, "prompt": 3}, "field 'prompt' must be a non-empty string"),
    ('{"prompt": "a", ', "not valid JSON"),
    ({**GOOD, "split": "dev"}, "field 'split' must be one of train, validation, test_id, test_ood"),
    ([1, 2], "expected a JSON object"),
])
def test_user_jsonl_errors_name_file_line_and_field(tmp_path, bad, expected):
    path = _jsonl(tmp_path / "x.jsonl", [GOOD, "", {**GOOD, "split": "test_id"}, bad])
    with pytest.raises(ValueError) as err:
        read_user_jsonl(path)
    message = _one_line(err)
    assert message.startswith(f"{path}:4: ") and expected in message


def test_user_jsonl_empty_file_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no samples"):
        read_user_jsonl(_jsonl(tmp_path / "e.jsonl", [""]))
    with pytest.raises(ValueError, match="no such file"):
        build_vie(VIEConfig(out=str(tmp_path / "o"), source=str(tmp_path / "none.jsonl")))


def test_user_jsonl_set_has_no_ground_truth(model_dir, tmp_path):
    rows = [GOOD, {**GOOD, "prompt": "a red barn"}, {**GOOD, "split": "test_ood"}]
    path = _jsonl(tmp_path / "u.jsonl", rows)
    out = build_vie(VIEConfig(out=str(tmp_path / "u"), source=str(path), model=str(model_dir),
                              difficulty_samples=1, max_new_tokens=4))
    manifest = load_manifest(out)
    assert manifest["ground_truth"] is False and manifest["source"] == str(path)
    assert {s: c["samples"] for s, c in manifest["counts"].items()} == {
        "train": 2, "validation": 0, "test_id": 0, "test_ood": 1}
    train = load_samples(out, "train")
    assert [s["prompt"] for s in train] == ["an empty swing set", "a red barn"]
    assert all(s["margin"] is None and s["instruction_split"] == "user" for s in train)
    assert all(it["pass_rate"] in (0.0, 1.0) for it in load_items(out, "train"))
    assert all(it["pass_rate"] is None for it in load_items(out, "test_ood"))


# ---------------------------------------------------------------- loading

def test_as_dataset_decodes_images(built):
    items = as_dataset(built, "train")
    assert len(items) == 12 and items.column_names[:2] == ["id", "sample_id"]
    first = items[0]
    assert len(first["images"]) == 2 and all(isinstance(im, Image.Image) for im in first["images"])
    samples = as_dataset(built, "test_ood", what="samples")
    assert len(samples) == 2 and isinstance(samples[0]["pos_image"], Image.Image)
    assert samples[0]["instruction"] == load_samples(built, "test_ood")[0]["instruction"]


def test_open_images_follows_the_item_order(built):
    item = load_items(built, "validation")[1]
    assert item["order"] == "negative_first"
    neg, pos = open_images(built, item)
    sample_pos, sample_neg = open_images(built, load_samples(built, "validation")[0])
    assert neg.tobytes() == sample_neg.tobytes() and pos.tobytes() == sample_pos.tobytes()


def test_loading_errors_are_one_line(built, tmp_path):
    with pytest.raises(ValueError) as err:
        load_items(tmp_path, "train")
    assert str(tmp_path) in _one_line(err) and "missing manifest.json" in str(err.value)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_samples(built, "dev")
    with pytest.raises(ValueError, match="must be 'items' or 'samples'"):
        as_dataset(built, "train", what="pairs")


def test_refuses_to_replace_a_folder_that_is_not_a_vie_set(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not a VIE set; refusing"):
        build_vie(VIEConfig(out=str(tmp_path / "run")), model=LiteralGenerator())
    assert (tmp_path / "run" / "keep.txt").exists()


@pytest.mark.parametrize("change, expected", [
    ({"n_train": -1}, "n_train must be at least 0"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"difficulty_samples": -1}, "difficulty_samples must be 0"),
])
def test_bad_config_values(tmp_path, change, expected):
    with pytest.raises(ValueError, match=expected):
        build_vie(VIEConfig(out=str(tmp_path / "c"), **change), model=LiteralGenerator())
