"""Typed run configs (seer.config): defaults, a YAML file, `--set key=value` overrides and
direct options, in that order; every mistake is a one-line ConfigError naming the key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from seer.config import ConfigError, build, parse_override, resolve
from seer.data.mix import DEFAULT_WEIGHTS
from seer.models.mini.model import MiniConfig
from seer.train.pretrain import PretrainConfig


@dataclasses.dataclass
class Inner:
    width: int = 4
    names: tuple[str, ...] = ("a",)


@dataclasses.dataclass
class Deep:
    inner: Inner = dataclasses.field(default_factory=Inner)
    depth: int = 1


@dataclasses.dataclass
class Small:
    name: str = "run"
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    maybe: int | None = None
    tags: tuple[str, ...] = ()
    sizes: tuple[int, ...] = (1, 2)
    table: dict[str, int] = dataclasses.field(default_factory=dict)
    anything: Any = None
    inner: Inner = dataclasses.field(default_factory=Inner)
    deep: Deep = dataclasses.field(default_factory=Deep)


def _yaml(tmp_path, text: str, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(cls, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(cls, *args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------- defaults and the file

def test_defaults():
    assert resolve(PretrainConfig) == PretrainConfig()
    assert resolve(Small) == Small()
    cfg = resolve(PretrainConfig, None, [])
    assert cfg.model == MiniConfig() and cfg.mix == DEFAULT_WEIGHTS


def test_resolved_mutable_defaults_are_not_shared():
    a, b = resolve(PretrainConfig), resolve(PretrainConfig)
    a.mix["generate"] = 0.0
    assert b.mix == DEFAULT_WEIGHTS and PretrainConfig().mix == DEFAULT_WEIGHTS


def test_yaml_file_values(tmp_path):
    path = _yaml(tmp_path, """
out: runs/test
steps: 10
lr: 0.25
vq_lr: 1
bf16: false
model:
  hidden_size: 64
  vq_channels: [32, 64]
mix: {generate: 1.0, attribute: 2}
""")
    cfg = resolve(PretrainConfig, path)
    assert cfg.out == "runs/test" and cfg.steps == 10 and cfg.lr == 0.25 and cfg.bf16 is False
    assert cfg.vq_lr == 1.0 and isinstance(cfg.vq_lr, float)  # an int where a float goes
    assert cfg.model.hidden_size == 64
    assert cfg.model.vq_channels == (32, 64) and isinstance(cfg.model.vq_channels, tuple)
    assert cfg.model.num_layers == MiniConfig().num_layers  # a partial section keeps the rest
    # A mapping merges entry by entry, in a file as with --set.
    assert cfg.mix == {**PretrainConfig().mix, "generate": 1.0, "attribute": 2.0}
    assert all(isinstance(v, float) for v in cfg.mix.values())
    # Everything not in the file keeps its default.
    assert cfg.batch_size == PretrainConfig().batch_size and cfg.seed == 0


def test_empty_yaml_file_means_defaults(tmp_path):
    assert resolve(PretrainConfig, _yaml(tmp_path, "")) == PretrainConfig()
    assert resolve(PretrainConfig, _yaml(tmp_path, "# nothing\n", "c.yaml")) == PretrainConfig()


def test_accepts_a_string_path(tmp_path):
    assert resolve(Small, str(_yaml(tmp_path, "count: 3"))).count == 3


def test_resolved_config_round_trips_through_its_json(tmp_path):
    """A run writes asdict(cfg) as config.json; reading it back gives the same config."""
    cfg = resolve(PretrainConfig, overrides=["steps=7", "model.vq_channels=[16, 32]", "lr=0.5",
                                             "bf16=false", "out=runs/x"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dataclasses.asdict(cfg)))
    assert resolve(PretrainConfig, path) == cfg


# ---------------------------------------------------------------- overrides

def test_set_overrides_with_dotted_keys():
    cfg = resolve(PretrainConfig, overrides=["model.hidden_size=64", "model.vq_channels=[32]",
                                             "steps=100", "out=runs/a", "lr=0.5", "bf16=false"])
    assert cfg.model.hidden_size == 64 and cfg.model.vq_channels == (32,)
    assert cfg.model.num_heads == MiniConfig().num_heads
    assert cfg.steps == 100 and cfg.out == "runs/a" and cfg.lr == 0.5 and cfg.bf16 is False


def test_a_dotted_override_two_levels_down_keeps_the_outer_defaults():
    """The demo sets its own rlmt.grpo (20 steps, 40 tokens); changing one key of it must not
    bring back the stage's class defaults (30 steps) for the others."""
    from seer.demo import DemoConfig

    demo = DemoConfig()
    cfg = resolve(DemoConfig, overrides=["rlmt.grpo.max_completion_length=64"])
    assert cfg.rlmt.grpo.max_completion_length == 64
    assert cfg.rlmt.grpo == dataclasses.replace(demo.rlmt.grpo, max_completion_length=64)
    assert cfg.rlmt.eval_before is demo.rlmt.eval_before


def test_override_value_forms():
    cfg = resolve(Small, overrides=["name=a=b", " count = 5", "maybe=null", "anything={x: [1]}",
                                    "deep.inner.width=9", "tags=[x, y]"])
    assert cfg.name == "a=b"  # only the first '=' splits
    assert cfg.count == 5
    assert cfg.maybe is None
    assert cfg.anything == {"x": [1]}
    assert cfg.deep.inner.width == 9 and cfg.deep.depth == 1 and cfg.deep.inner.names == ("a",)
    assert cfg.tags == ("x", "y")
    assert resolve(Small, overrides=["name="]).name == ""
    assert resolve(Small, overrides=["count=1", "count=2"]).count == 2  # the last one wins


def test_parse_override():
    assert parse_override("model.hidden_size=64") == (["model", "hidden_size"], 64)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=") == (["a"], "")


def test_tuple_dict_and_optional_fields():
    cfg = resolve(Small, overrides=["tags=[a, b]", "sizes=[3]", "table={x: 1, y: 2}", "maybe=4",
                                    "inner.names=[p, q]"])
    assert cfg.tags == ("a", "b") and cfg.sizes == (3,) and cfg.table == {"x": 1, "y": 2}
    assert cfg.maybe == 4 and cfg.inner.names == ("p", "q") and cfg.inner.width == 4
    assert resolve(Small, overrides=["sizes=[]"]).sizes == ()
    assert resolve(Small, overrides=["table.z=3"]).table == {"z": 3}


def test_list_fields_stay_lists():
    from seer.train.rlvr import RLVRConfig

    cfg = resolve(RLVRConfig, overrides=["eval_splits=[test_ood]", "curriculum_schedule=[0, 0.5, 0.75]"])
    assert cfg.eval_splits == ["test_ood"] and cfg.curriculum_schedule == [0.0, 0.5, 0.75]
    with pytest.raises(ConfigError, match="eval_splits: expected a list"):
        resolve(RLVRConfig, overrides=["eval_splits=test_ood"])


def test_dotted_override_into_a_dict_field_changes_one_entry():
    """`--set` overrides one key ("override one config key, e.g. --set steps=100"): setting
    one mix weight must keep the other kinds. BUG: build() replaces the whole dict, so
    `--set mix.knowledge=0.1` leaves a mix of knowledge only."""
    cfg = resolve(PretrainConfig, overrides=["mix.knowledge=0.1"])
    assert cfg.mix == {**DEFAULT_WEIGHTS, "knowledge": 0.1}


@pytest.mark.parametrize("source", ["override", "file", "config.json"])
def test_floats_in_scientific_notation(tmp_path, source):
    """Learning rates are written 1e-3 (as in PretrainConfig itself), and json.dumps writes
    small floats as 5e-05. BUG: PyYAML (YAML 1.1) reads '1e-3' as a string, so each of these
    is refused with "lr: expected float, got '1e-3'"."""
    if source == "override":
        cfg = resolve(PretrainConfig, overrides=["lr=1e-3"])
        assert cfg.lr == 1e-3
    elif source == "file":
        cfg = resolve(PretrainConfig, _yaml(tmp_path, "lr: 2e-3\nvq_lr: 1e-4\n"))
        assert cfg.lr == 2e-3 and cfg.vq_lr == 1e-4
    else:
        written = dataclasses.replace(PretrainConfig(), lr=5e-5)
        path = tmp_path / "config.json"
        path.write_text(json.dumps(dataclasses.asdict(written)))
        assert resolve(PretrainConfig, path) == written


# ---------------------------------------------------------------- precedence

def test_precedence_defaults_file_overrides_direct(tmp_path):
    path = _yaml(tmp_path, """
out: from-file
seed: 3
steps: 10
batch_size: 8
model: {hidden_size: 64, num_layers: 2}
""")
    cfg = resolve(PretrainConfig, path, ["steps=20", "out=from-set", "model.hidden_size=32"],
                  out="direct", seed=None, batch_size=None)
    assert cfg.out == "direct"  # direct option beats --set and file
    assert cfg.steps == 20  # --set beats the file
    assert cfg.seed == 3 and cfg.batch_size == 8  # None direct options are ignored
    assert cfg.model.hidden_size == 32 and cfg.model.num_layers == 2  # sections merge layer by layer
    assert cfg.lr == PretrainConfig().lr  # untouched: the default
    assert resolve(PretrainConfig, path, [], seed=0).seed == 0  # a falsy direct option still counts


def test_direct_options_alone():
    cfg = resolve(PretrainConfig, out="runs/d", seed=5)
    assert (cfg.out, cfg.seed) == ("runs/d", 5)
    assert resolve(PretrainConfig, out=None, seed=None) == PretrainConfig()


def test_resolve_does_not_change_the_file(tmp_path):
    path = _yaml(tmp_path, "steps: 10\n")
    resolve(PretrainConfig, path, ["steps=20"])
    assert path.read_text() == "steps: 10\n"
    assert resolve(PretrainConfig, path).steps == 10


# ---------------------------------------------------------------- errors

def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_unknown_keys_are_named():
    message = _error(PretrainConfig, overrides=["stpes=10"])
    assert "unknown config key 'stpes'" in message and "steps" in message  # lists the known keys
    assert "unknown config key 'model.hiden_size'" in _error(PretrainConfig, overrides=["model.hiden_size=1"])
    assert "unknown config key 'deep.inner.colour'" in _error(Small, overrides=["deep.inner.colour=1"])
    assert "unknown config key 'bogus'" in _error(Small, bogus=1)


def test_unknown_key_in_a_file_names_the_file_and_the_key(tmp_path):
    path = _yaml(tmp_path, "model:\n  hidden_size: 8\n  dropout: 0.1\n")
    message = _error(PretrainConfig, path)
    assert message.startswith(f"{path}: ") and "'model.dropout'" in message


@pytest.mark.parametrize(("override", "key"), [
    ("steps=ten", "steps"),
    ("steps=1.5", "steps"),
    ("steps=true", "steps"),  # a bool is not an int
    ("lr=fast", "lr"),
    ("lr=true", "lr"),
    ("out=[a]", "out"),
    ("model.hidden_size=big", "model.hidden_size"),
    ("model.vq_channels=32", "model.vq_channels"),  # a list is needed
    ("model.vq_channels=[a]", "model.vq_channels"),
    ("model=3", "model"),
    ("mix=[1]", "mix"),
    ("mix.generate=lots", "mix.generate"),
    ("bf16=1", "bf16"),
])
def test_wrong_types_name_the_key(override, key):
    message = _error(PretrainConfig, overrides=[override])
    assert message.startswith(f"{key}: expected"), message


def test_yes_string_is_not_a_bool(tmp_path):
    message = _error(PretrainConfig, _yaml(tmp_path, 'bf16: "yes"\n'))
    assert "bf16: expected true or false, got 'yes'" in message
    assert "bf16: expected true or false" in _error(PretrainConfig, bf16="yes")
    assert "flag" in _error(Small, overrides=["flag='no'"])


def test_wrong_types_in_small_dataclass_fields():
    assert _error(Small, overrides=["maybe=x"]).startswith("maybe: expected int")
    assert _error(Small, overrides=["tags=[a, 1]"]).startswith("tags: expected str")
    assert _error(Small, overrides=["table={x: y}"]).startswith("table.x: expected int")
    assert _error(Small, overrides=["table=[1]"]).startswith("table: expected a mapping")
    assert _error(Small, overrides=["deep.inner.width=w"]).startswith("deep.inner.width: expected int")
    assert _error(Small, overrides=["deep.inner=3"]).startswith("deep.inner: expected a mapping")
    assert _error(Small, count=2.0).startswith("count: expected int")


def test_override_without_equals():
    message = _error(PretrainConfig, overrides=["steps"])
    assert "override 'steps': expected key=value" in message
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("model.hidden_size")


def test_override_into_a_non_section_names_the_key(tmp_path):
    # A scalar already set (by the file or an earlier override) is not a section ...
    message = _error(PretrainConfig, _yaml(tmp_path, "seed: 1\n"), ["seed.value=2"])
    assert "'seed' is not a section" in message and "seed.value=2" in message
    assert "'steps' is not a section" in _error(PretrainConfig, overrides=["steps=1", "steps.x=2"])
    # ... nor is one left at its default.
    assert _error(PretrainConfig, overrides=["seed.value=2"]).startswith("seed: expected int")
    assert "'lr'" in _error(PretrainConfig, overrides=["lr=0.1", "lr.x.y=2"])


def test_unreadable_files_are_named(tmp_path):
    missing = tmp_path / "missing.yaml"
    message = _error(PretrainConfig, missing)
    assert message.startswith(f"{missing}: cannot read config")
    broken = _yaml(tmp_path, "steps: [1, 2\nlr: 0.1\n", "broken.yaml")
    message = _error(PretrainConfig, broken)
    assert message.startswith(f"{broken}: cannot read config")
    assert "cannot read config" in _error(PretrainConfig, tmp_path)  # a folder


@pytest.mark.parametrize("text", ["- steps\n- lr\n", "just a string\n", "42\n"])
def test_non_mapping_file_is_named(tmp_path, text):
    path = _yaml(tmp_path, text)
    assert _error(PretrainConfig, path) == f"{path}: expected a mapping of config keys"


def test_binary_file_is_a_config_error_naming_it(tmp_path):
    """A file that is not UTF-8 text cannot be read as a config. BUG: resolve() catches only
    OSError and YAMLError, so Path.read_text's UnicodeDecodeError escapes as a raw
    traceback that does not name the file."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\xff\xfe\x00binary")
    message = _error(PretrainConfig, path)
    assert message.startswith(f"{path}: cannot read config")


def test_build_directly():
    cfg = build(PretrainConfig, {"model": {"hidden_size": 16}, "steps": 3})
    assert cfg.model.hidden_size == 16 and cfg.steps == 3 and cfg.model.num_layers == 6
    with pytest.raises(ConfigError, match=r"unknown config key 'x.nope'"):
        build(Inner, {"nope": 1}, prefix="x.")


def test_a_section_of_a_multi_command_file(tmp_path):
    from seer.train.rlvr import RLVRConfig

    path = tmp_path / "gpu.yaml"
    path.write_text("opts: &o\n  dtype: bfloat16\nrlvr:\n  model_options: *o\n  grpo:\n    max_steps: 7\n"
                    "rlmt:\n  order: both\n")
    cfg = resolve(RLVRConfig, f"{path}:rlvr")
    assert cfg.grpo.max_steps == 7 and cfg.model_options == {"dtype": "bfloat16"}
    with pytest.raises(ConfigError, match="no section 'rlvr_full' \\(sections: opts, rlvr, rlmt\\)"):
        resolve(RLVRConfig, f"{path}:rlvr_full")


def test_every_shipped_gpu_config_section_resolves():
    from seer.train.rlmt import RLMTConfig
    from seer.train.rlvr import RLVRConfig

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        sections = yaml.safe_load(path.read_text())
        for name in sections:
            if name.startswith("rlvr") or name.startswith("rlmt"):
                cls = RLVRConfig if name.startswith("rlvr") else RLMTConfig
                resolve(cls, f"{path}:{name}").validate()


def test_accelerate_configs_parse():
    folder = Path(__file__).parents[1] / "configs" / "accelerate"
    kinds = {}
    for path in folder.glob("*.yaml"):
        body = yaml.safe_load(path.read_text())
        assert body["num_processes"] >= 2 and body["compute_environment"] == "LOCAL_MACHINE", path
        kinds[path.stem] = body["distributed_type"]
    assert {"MULTI_GPU", "FSDP", "DEEPSPEED"} <= set(kinds.values())
