"""data/vie-real.jsonl, the hand-written real-world VIE set: it loads with the VIE loader,
has the documented split sizes, keeps its test sets honest (no train prompt in a test set,
out-of-distribution instruction families never seen before), and its elaborations spell the
instruction out instead of repeating it (SEER's "laziness") without dropping the prompt
(SEER's "omission")."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from seer.data.vie import SPLITS, read_user_jsonl

PATH = Path(__file__).resolve().parents[2] / "data" / "vie-real.jsonl"
COUNTS = {"train": 300, "validation": 40, "test_id": 60, "test_ood": 60}
DIFFICULTIES = {"simple", "hard"}
STOPWORDS = {"a", "an", "the", "of", "on", "in", "at", "by", "to", "with", "and", "its", "his", "her",
             "their", "from", "for", "into", "over", "under", "near", "end", "two", "one"}
FILLER = STOPWORDS | {"it", "make", "look", "like", "but", "yet", "still", "give", "keep", "feel", "without",
                      "while", "that", "as", "be"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9'-]+", text.lower())


def test_loads_with_the_vie_loader(rows):
    triples = read_user_jsonl(PATH)
    assert {split: len(triples[split]) for split in SPLITS} == COUNTS
    for split in SPLITS:  # the loader keeps the file's order within a split
        mine = [r for r in rows if r["split"] == split]
        assert [(t.prompt, t.instruction, t.elaboration) for t in triples[split]] == \
            [(r["prompt"], r["instruction"], r["elaboration"]) for r in mine]
        assert all(t.instruction_split == "user" for t in triples[split])


def test_fields_and_counts(rows):
    assert len(rows) == sum(COUNTS.values())
    assert Counter(r["split"] for r in rows) == COUNTS
    for r in rows:
        assert set(r) == {"prompt", "instruction", "elaboration", "split", "difficulty", "family"}
        assert r["difficulty"] in DIFFICULTIES
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+", r["family"]), r["family"]
    for split in SPLITS:  # simple and hard instructions in every split
        assert {r["difficulty"] for r in rows if r["split"] == split} == DIFFICULTIES


def test_a_family_has_one_difficulty(rows):
    difficulty: dict[str, set[str]] = {}
    for r in rows:
        difficulty.setdefault(r["family"], set()).add(r["difficulty"])
    assert all(len(d) == 1 for d in difficulty.values())


def test_in_and_out_of_distribution_families(rows):
    families = {split: {r["family"] for r in rows if r["split"] == split} for split in SPLITS}
    seen = families["train"] | families["validation"] | families["test_id"]
    assert not families["test_ood"] & seen
    assert families["validation"] <= families["train"]
    assert families["test_id"] <= families["train"]
    train_instructions = {r["instruction"] for r in rows if r["split"] == "train"}
    assert {r["instruction"] for r in rows if r["split"] == "test_id"} <= train_instructions
    assert not {r["instruction"] for r in rows if r["split"] == "test_ood"} & train_instructions


def test_no_duplicate_pairs(rows):
    pairs = Counter((r["prompt"], r["instruction"]) for r in rows)
    assert [pair for pair, n in pairs.items() if n > 1] == []


def test_held_out_prompts_are_new(rows):
    prompts = {split: {r["prompt"] for r in rows if r["split"] == split} for split in SPLITS}
    held_out = ("validation", "test_id", "test_ood")
    for split in held_out:
        assert not prompts[split] & prompts["train"], split
    for i, a in enumerate(held_out):
        for b in held_out[i + 1:]:
            assert not prompts[a] & prompts[b], (a, b)


def test_elaborations_spell_the_instruction_out(rows):
    for r in rows:
        elaboration = r["elaboration"]
        assert len(elaboration.split()) >= 15, elaboration
        assert r["instruction"].lower() not in elaboration.lower(), elaboration
        assert elaboration.lower() != r["prompt"].lower()


def test_hard_elaborations_do_not_echo_the_instruction(rows):
    """A two-sided instruction is turned into visual traits, not restated: at most half of
    its content words ("scary", "cute", ...) come back in the elaboration."""
    for r in rows:
        if r["difficulty"] != "hard":
            continue
        asked = [w for w in _words(r["instruction"]) if w not in FILLER]
        echoed = [w for w in asked if w in set(_words(r["elaboration"]))]
        assert len(echoed) <= len(asked) / 2, (r["instruction"], r["elaboration"])


def test_elaborations_keep_the_prompt(rows):
    """Every content word of the prompt is in the elaboration (plural and -ing forms allowed)."""
    for r in rows:
        have = set(_words(r["elaboration"]))
        missing = [w for w in _words(r["prompt"]) if w not in STOPWORDS
                   and not any(h.startswith(w[:max(4, len(w) - 2)]) for h in have)]
        assert missing == [], (r["prompt"], r["elaboration"])


def test_difficulty_reaches_the_built_set():
    from seer.data.vie import read_user_jsonl

    rows = read_user_jsonl(Path(__file__).parents[2] / "data" / "vie-real.jsonl")
    assert {t.instruction_difficulty for t in rows["test_ood"]} == {"simple", "hard"}
