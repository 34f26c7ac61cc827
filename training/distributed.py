"""Multi-process training through torch.distributed: one command from a 2-core CPU to several GPUs.

    python -m emotion_ros_training.train ...                                  # 1 process
    torchrun --nproc_per_node 2 -m emotion_ros_training.train ...             # 2 processes (gloo on CPU)
    torchrun --nproc_per_node 4 -m emotion_ros_training.train ...             # 4 GPUs (nccl, one GPU per process)

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; ``init`` reads them and picks
nccl when CUDA is available, gloo otherwise. Without them everything runs in one process.

Why not DistributedDataParallel: the trainable parts are small (fusion, adapter, LoRA) and spread over a
model with frozen parts; one all-reduce of the flattened gradients per optimiser step does what DDP does
for us, keeps gradient accumulation trivial, and lets us normalise the loss by the GLOBAL number of target
tokens (or of samples, recipe ``loss_weighting``), so the summed gradient of N processes is exactly the
gradient of the 1-process global batch.
Sample sharding is done by emotion_ros_training.curriculum.Curriculum.batch_indices (DistributedSampler's
interleaving, but addressable by step so a resumed run starts mid-epoch without repeating data).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init(backend: str | None = None, device: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else a 1-process DistInfo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    dev = device or (f"cuda:{local}" if cuda else "cpu")
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
    if world <= 1:
        return DistInfo(0, 1, 0, dev, None)
    backend = backend or ("nccl" if dev.startswith("cuda") else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local, dev, backend)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(value: float, info: DistInfo) -> float:
    """Sum of a Python number over all processes (float64 on the wire)."""
    if not info.enabled:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device(info))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def any_flag(flag: bool, info: DistInfo) -> bool:
    """True on every process if it is True on any (e.g. a stop request seen by one rank)."""
    return all_reduce_sum(1.0 if flag else 0.0, info) > 0


def all_reduce_grads(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """Sum the gradients of ``params`` over processes in one flat all-reduce (missing grads = zeros)."""
    if not info.enabled:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params]).to(_comm_device(info))
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def broadcast_params(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """Make every process start from rank 0's trainable weights."""
    if not info.enabled:
        return
    with torch.no_grad():
        for p in params:
            buf = p.data.to(_comm_device(info))
            dist.broadcast(buf, src=0)
            p.data.copy_(buf)


def _comm_device(info: DistInfo) -> torch.device:
    return torch.device(info.device if info.backend == "nccl" else "cpu")
