"""Typed run configs: dataclass defaults, a YAML file over them, `--set key=value` on top.

Sections (nested dataclasses) and mapping fields merge entry by entry: `--set
mix.knowledge=0.1` changes one weight and keeps the others. Every command resolves its
config this way and writes the result beside its outputs, so a run can be repeated from
its folder alone. Unknown keys and values of the wrong type are one-line errors that
name the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit the command's config."""


def _convert(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping")
        return build(kind, value, prefix=f"{key}.")
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, options[0], key)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = typing.get_args(kind)[0]
        return origin(_convert(v, inner, key) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, inner = typing.get_args(kind)
        return {k: _convert(v, inner, f"{key}.{k}") for k, v in value.items()}
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        # YAML 1.1 reads "1e-3" (no decimal point) as a string; JSON writes floats that way.
        try:
            return float(value)
        except ValueError:
            pass
    if kind in (int, str) and isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(out.get(key), dict) and isinstance(value, dict)
        out[key] = _deep_merge(out[key], value) if both else value
    return out


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """An instance of dataclass `cls` from a (nested) mapping; missing keys keep defaults."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown config key '{prefix}{key}' (known: {', '.join(sorted(fields))})")
    base = cls()
    values = {}
    for key, value in data.items():
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            # Deep: "rlmt.grpo.max_steps" changes that one key of the demo's own rlmt.grpo,
            # not the stage's class defaults.
            merged = _deep_merge(dataclasses.asdict(current), value)
            values[key] = _convert(merged, hints[key], prefix + key)
        elif isinstance(current, dict) and isinstance(value, dict):
            # A mapping field takes the given entries over its defaults, one key at a time.
            values[key] = _convert({**current, **value}, hints[key], prefix + key)
        else:
            values[key] = _convert(value, hints[key], prefix + key)
    return dataclasses.replace(base, **values)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def resolve(cls: type, path: str | Path | None = None, overrides: list[str] = (),
            **direct: Any) -> Any:
    """Defaults, then the YAML file, then `--set` overrides, then explicit options."""
    data: dict[str, Any] = {}
    if path is not None:
        # "file.yaml:rlvr" reads one section of a file that configures several commands.
        section = None
        if ":" in str(path) and not Path(path).exists():
            path, section = str(path).rsplit(":", 1)
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read config: {str(err).splitlines()[0]}") from None
        if section is not None:
            if not isinstance(loaded, dict) or not isinstance(loaded.get(section), dict):
                sections = loaded.items() if isinstance(loaded, dict) else []
                known = ", ".join(k for k, v in sections if isinstance(v, dict))
                raise ConfigError(f"{path}: no section '{section}' (sections: {known})")
            loaded = loaded[section]
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys")
        data = loaded
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{k}' is not a section")
        node[keys[-1]] = value
    data.update({k: v for k, v in direct.items() if v is not None})
    try:
        return build(cls, data)
    except ConfigError as err:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{err}") from None
