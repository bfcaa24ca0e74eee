"""Sharded parameters (FSDP2, `torch.distributed.fsdp.fully_shard`) for every backend.

A backend names what to shard (`UnifiedModel.fsdp_units`: its decoder layers, and the
modules the root unit holds); how it is sharded, gathered and saved is here. Three rules
follow from FSDP's parameters being collective:

- The root unit is a `ShardRoot`, whose forward runs whatever function it is handed. A
  backend sends each of its entry points through it (`root_call`), so every use of the
  root's own parameters (embeddings, output head, image parts) happens inside one root
  forward: FSDP gathers them before it and reduces their gradients after its backward.
  A language model's own forward would not do: the backends embed tokens before it.
- Every process must run the same sequence of sharded forward passes. Sampling loops end
  at different lengths on different processes, so they run `gathered` (`gathered_call`):
  full weights on every process, gathered once on entry, no collective inside.
- Gathering full weights to save them (`full_state`) is collective too: every process
  calls `save_pretrained`; the main process alone writes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from seer.models.interface import ModelError


class ShardRoot(nn.Module):
    """FSDP's root unit over `parts`; its forward calls the function it is given."""

    def __init__(self, parts: dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict(parts)

    def forward(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        return fn(*args, **kwargs)


def device_mesh(device: torch.device):
    """A 1-D mesh over all processes, on the device type of the process group's backend
    (gloo: CPU, NCCL: CUDA); the model must already live there."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_available() or not dist.is_initialized():
        raise ModelError("sharding (FSDP) needs a process group: launch with `accelerate launch`")
    backend = str(dist.get_backend())
    kind = {"gloo": "cpu", "nccl": "cuda"}.get(backend)
    if kind is None:
        raise ModelError(f"sharding (FSDP) runs over gloo (CPU) or NCCL (CUDA), not {backend}")
    if device.type != kind:
        hint = " (CUDA weights need an NCCL process group)" if device.type == "cuda" else ""
        raise ModelError(f"sharding (FSDP) over {backend} needs the model on {kind}; it is on {device}{hint}")
    return init_device_mesh(kind, (dist.get_world_size(),))


class Sharded:
    """A backend's FSDP state: each of `layers` is a unit, `parts` form the root unit."""

    def __init__(self, layers: list[nn.Module], parts: dict[str, nn.Module], mesh):
        from torch.distributed.fsdp import fully_shard

        if not layers:
            raise ModelError("nothing to shard: the backend named no decoder layers")
        self.layers = [fully_shard(layer, mesh=mesh) for layer in layers]
        self.root = fully_shard(ShardRoot({k: v for k, v in parts.items() if v is not None}), mesh=mesh)
        self.rank = mesh.get_rank()
        self._inside = self._gathered = False
        # The first root forward decides which unit is the root; make it this one, on every
        # process, before any other unit (or a `gathered` below) runs alone.
        self.run(lambda: None)
        self.root.reshard()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def run(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """`fn(*args, **kwargs)` inside the root's forward (a nested call runs directly:
        one root forward per entry point)."""
        if self._inside:
            return fn(*args, **kwargs)
        self._inside = True
        try:
            return self.root(fn, *args, **kwargs)
        finally:
            self._inside = False

    @contextlib.contextmanager
    def gathered(self) -> Iterator[None]:
        """Full weights on every process: collective on entry (every process enters), then
        forward passes need no collective, so a process may run more of them than another
        (sampling that ends at different lengths, an evaluation on the main process only).
        Backward needs the sharded state: train outside. Costs full weights in memory."""
        if self._gathered:
            yield
            return
        self._gathered = True
        units = [*self.layers, self.root]
        try:
            for layer in self.layers:
                layer.set_reshard_after_forward(False, recurse=False)
            for unit in units:
                unit.unshard()
            yield
        finally:
            for layer in self.layers:
                layer.set_reshard_after_forward(True, recurse=False)
            for unit in units:
                unit.reshard()
            self._gathered = False

    def full_state(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """`module`'s state dict with full tensors on the CPU, on the main process ({} on the
        others). Collective: every process calls it, in the same order."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def plain_lm(lm: nn.Module) -> nn.Module:
    """The language model under its `peft` wrapper (LoRA layers in place), or `lm` itself."""
    return lm.get_base_model() if hasattr(lm, "peft_config") else lm


def full_lm_state(sharded: Sharded, lm: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The plain language model (it writes the config) and its full weights, LoRA merged,
    for `save_pretrained` of a sharded model; {} on processes other than the main one.
    Collective, like `Sharded.full_state`."""
    state = sharded.full_state(lm)
    return plain_lm(lm), (plain_state(lm, state) if sharded.is_main else {})


def root_call(method: Callable[..., Any]) -> Callable[..., Any]:
    """A backend method that runs inside the root's forward once the model is sharded:
    for passes with gradient (one per call, the same on every process)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        sharded = self._sharded
        if sharded is None:
            return method(self, *args, **kwargs)
        return sharded.run(method, self, *args, **kwargs)

    return wrapper


def gathered_call(method: Callable[..., Any]) -> Callable[..., Any]:
    """A backend method that runs on gathered weights once the model is sharded: for
    sampling and scoring without gradient, whose forward passes may differ by process."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        sharded = self._sharded
        if sharded is None:
            return method(self, *args, **kwargs)
        with sharded.gathered():
            return sharded.run(method, self, *args, **kwargs)

    return wrapper


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A sharded (DTensor) parameter's full value (collective), any other tensor as it is."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


@torch.no_grad()
def assign(param: torch.Tensor, value: torch.Tensor) -> None:
    """Copy a full `value` into `param`, sharded or not (each process keeps its own shard of
    the value it holds: no communication)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(param, DTensor):
        value = distribute_tensor(value.to(param.device, param.dtype), param.device_mesh, param.placements,
                                  src_data_rank=None)
    param.copy_(value)


def plain_state(
    model: nn.Module, state: dict[str, torch.Tensor], prefix: str = ""
) -> dict[str, torch.Tensor]:
    """A full state dict gathered from a model whose `peft` model (`model`, under `prefix`
    in the state's names) may carry LoRA adapters, under the names of the plain model, each
    adapter merged into its base weight (W + scaling B A). No adapters: `state` unchanged."""
    if not hasattr(model, "peft_config"):
        return state
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    inner = "base_model.model."
    out = {}
    for key, value in state.items():
        if ".lora_" not in key:
            out[key.replace(prefix + inner, prefix, 1).replace(".base_layer.", ".")] = value
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        if not isinstance(module, LoraLinear) or module.fan_in_fan_out:
            raise ModelError(f"cannot merge the LoRA adapter of {name} ({type(module).__name__})")
        key = prefix + name.removeprefix(inner) + ".weight"
        weight = out[key].float()
        for adapter in module.active_adapters:
            if adapter in module.lora_A:
                a = state[f"{prefix}{name}.lora_A.{adapter}.weight"].float()
                b = state[f"{prefix}{name}.lora_B.{adapter}.weight"].float()
                weight = weight + (b @ a) * module.scaling[adapter]
        out[key] = weight.to(out[key].dtype)
    return out
