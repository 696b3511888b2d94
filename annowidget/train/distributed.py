"""One rank of a run launched by ``torchrun``: the process group, DistributedDataParallel,
and the agreements every rank must reach at the same step.

``annowidget train ... --nproc-per-node N`` (see :mod:`annowidget.train.launch`) starts
``python -m torch.distributed.run ... -m annowidget.train.distributed SPEC.json``; every rank
runs the same :class:`~annowidget.train.trainer.Trainer` (as :class:`RankTrainer`) with:

- the model wrapped in ``DistributedDataParallel`` (gradients averaged across ranks; its
  ``state_dict`` is the plain model's, so checkpoints load anywhere);
- a distributed sampler: each rank trains on its own share of every epoch;
- the loss of every step averaged across ranks (one all-reduce), so a NaN on any rank is a
  NaN on all of them and they fail or retry together;
- a stop that every rank agrees on before each step: Stop (a stop file written by the
  launching process), Ctrl-C or SIGTERM on any rank stops all of them after the same step,
  keeping the last completed epoch;
- evaluation sharded across ranks, the predictions gathered (``all_gather_object``) before
  COCOeval;
- rank 0 alone writes the registry (checkpoints, weights, the card) and the event stream (one
  JSON object per line) that the launching process reads.

Outside a process group every helper here is the identity: one process, nothing to agree on.
Backends: gloo on the CPU, nccl on CUDA.

Example:
    >>> is_active(), world_size(), rank(), average(0.5)
    (False, 1, 0, 0.5)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

# ----------------------------------------------------------------------------- the group


def is_active() -> bool:
    """Whether this process is one of several ranks of an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 outside a process group)."""
    return dist.get_world_size() if is_active() else 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_active() else 0


def local_world_size() -> int:
    """Ranks on this machine (torchrun's ``LOCAL_WORLD_SIZE``; 1 outside torchrun)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def backend_for(device_type: str) -> str:
    """``nccl`` for CUDA, ``gloo`` for the CPU.

    Example:
        >>> backend_for("cpu"), backend_for("cuda")
        ('gloo', 'nccl')
    """
    return "nccl" if device_type == "cuda" else "gloo"


def _collective_device() -> torch.device:
    """Where tensors of collectives live: nccl only reduces CUDA tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def average(value: float) -> float:
    """The mean of ``value`` over all ranks (NaN if it is NaN on any rank).

    Example:
        >>> average(2.0)  # one process: the value itself
        2.0
    """
    if not is_active():
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on at least one rank (every rank gets the same answer).

    Example:
        >>> any_rank(True)
        True
    """
    if not is_active():
        return bool(flag)
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def gather(items: list[Any]) -> list[Any]:
    """Every rank's ``items`` concatenated in rank order (picklable objects).

    Example:
        >>> gather([1, 2])
        [1, 2]
    """
    if not is_active():
        return list(items)
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]


def shard(length: int) -> list[int]:
    """This rank's indices of a sequence of ``length`` items: every world-size-th one.

    Example:
        >>> shard(3)
        [0, 1, 2]
    """
    return list(range(rank(), length, world_size()))


class EpochSampler(DistributedSampler):
    """A ``DistributedSampler`` that reshuffles at every pass (it calls ``set_epoch`` itself,
    so the training loop needs no distributed code).

    Example:
        >>> # DataLoader(dataset, sampler=EpochSampler(dataset, seed=0), batch_size=4)
    """

    def __init__(self, dataset: Dataset, *, seed: int = 0) -> None:
        super().__init__(dataset, shuffle=True, seed=seed, drop_last=False)
        self._passes = 0

    def __iter__(self) -> Iterator[int]:
        self.set_epoch(self._passes)
        self._passes += 1
        return super().__iter__()


# ----------------------------------------------------------------------------- the model


class _DistributedModel(DistributedDataParallel):
    """DDP whose state dict is the wrapped model's (no ``module.`` prefix), so the Trainer's
    checkpoints, weights and retries need no distributed code."""

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` (already on ``device``) in DistributedDataParallel; unchanged outside a group.

    Parts of a detection model can take no part in a step's loss (a head whose batch has no
    box to learn from): ``find_unused_parameters`` lets DDP finish its reduction anyway.

    Example:
        >>> wrap(nn.Linear(1, 1), torch.device("cpu")).__class__.__name__
        'Linear'
    """
    if not is_active():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return _DistributedModel(model, device_ids=device_ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper (``model`` itself otherwise).

    Example:
        >>> layer = nn.Linear(1, 1); unwrap(layer) is layer
        True
    """
    return model.module if isinstance(model, DistributedDataParallel) else model


# ------------------------------------------------------------------------------ stopping


class DistributedStop:
    """A ``threading.Event`` look-alike whose ``is_set`` is agreed by every rank.

    ``set()`` (Stop, Ctrl-C, SIGTERM on this rank), the stop file (written by the launching
    process) and the end of the launching process (a closed notebook kernel) are local;
    ``is_set()`` is a collective (every rank calls it at the same point of the loop, as the
    Trainer and the engine do): true everywhere as soon as one rank wants to stop, and true
    for good after that.

    Example:
        >>> stop = DistributedStop(None); stop.is_set()
        False
        >>> stop.set(); stop.is_set()
        True
    """

    def __init__(
        self, stop_file: str | os.PathLike[str] | None, launcher_pid: int | None = None
    ) -> None:
        self.stop_file = Path(stop_file) if stop_file else None
        self.launcher_pid = launcher_pid
        self._local = threading.Event()
        self._agreed = False

    def set(self) -> None:
        self._local.set()

    def clear(self) -> None:
        self._local.clear()
        self._agreed = False

    def wanted_here(self) -> bool:
        """Whether this rank wants to stop (no collective)."""
        if self._local.is_set():
            return True
        if self.stop_file is not None and self.stop_file.exists():
            return True
        return self.launcher_pid is not None and not _alive(self.launcher_pid)

    def is_set(self) -> bool:
        if not self._agreed:
            self._agreed = any_rank(self.wanted_here())
        return self._agreed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


# ------------------------------------------------------------------------------ the rank


def _rank_device(setting: str) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for a GPU run, the CPU otherwise."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if setting == "cpu":
        return torch.device("cpu")
    if setting.startswith("cuda") or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError(f"device {setting!r} is not available: torch sees no CUDA GPU")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"rank {local_rank} of this machine has no GPU: {torch.cuda.device_count()} "
                "visible; lower --nproc-per-node"
            )
        return torch.device("cuda", local_rank)
    if setting == "auto":
        return torch.device("cpu")
    raise ValueError(f"device {setting!r} cannot run several processes: use cpu or cuda")


class _RankRegistry:
    """The registry as ranks other than 0 see it: reads pass through, writes do nothing
    (rank 0 writes the same files)."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def reserve(self, name: str, card: Any) -> Path:
        return self._registry.model_dir(name)

    def save_card(self, card: Any) -> Path:
        return self._registry.model_dir(card.name)

    def save_weights(self, name: str, state_dict: Any) -> Path:
        from annowidget.models.card import WEIGHTS_FILE

        return self._registry.model_dir(name) / WEIGHTS_FILE

    def save_checkpoint(self, name: str, epoch: int, state_dict: Any) -> str:
        from annowidget.models.card import checkpoint_filename

        return checkpoint_filename(epoch)

    def delete(self, name: str) -> None:
        return None


def _rank_trainer_class() -> type:
    from annowidget.train.trainer import Trainer

    class RankTrainer(Trainer):
        """The Trainer of one rank: DDP model, agreed stop, rank 0 alone writes."""

        def __init__(
            self,
            *args: Any,
            stop_file: str | None = None,
            launcher_pid: int | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self._stop = DistributedStop(stop_file, launcher_pid)  # type: ignore[assignment]
            if rank() != 0:
                self.registry = _RankRegistry(self.registry)  # type: ignore[assignment]

        def _build_model(self) -> nn.Module:
            assert self._device is not None
            return wrap(super()._build_model().to(self._device), self._device)

    return RankTrainer


class EventWriter:
    """A subscriber that appends each event as one JSON line to ``path`` (flushed at once,
    so the launching process sees it live).

    Example:
        >>> # trainer.subscribe(EventWriter(run_dir / "events.jsonl"))
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the run
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        line = json.dumps(event.to_dict(), default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def run_rank(spec: dict[str, Any]) -> int:
    """Train as one rank of a torchrun launch described by ``spec`` (see
    :func:`annowidget.train.launch.write_spec`); returns the exit code.

    Example:
        >>> # torchrun --nproc-per-node 2 -m annowidget.train.distributed spec.json
    """
    from annowidget.store import Project
    from annowidget.train.events import FailedEvent
    from annowidget.train.hyperparameters import Hyperparameters

    hp = Hyperparameters.from_dict(dict(spec["hyperparameters"]))
    device = _rank_device(hp.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device.type))
    writer = EventWriter(spec["events"]) if dist.get_rank() == 0 else None
    trainer: Any = None

    def stop(signum: int, frame: Any) -> None:  # Ctrl-C or SIGTERM: stop every rank, keep
        if trainer is not None:
            trainer.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    try:
        with Project.open(spec["project"]) as project:
            trainer = _rank_trainer_class()(
                project,
                spec["name"],
                task=spec["task"],
                base_model=spec["base_model"],
                hyperparameters=hp.replace(device=str(device)),
                train_folders=spec["train_folders"],
                test_folders=spec["test_folders"],
                description=spec.get("description", ""),
                pretrained=spec.get("pretrained", True),
                stop_file=spec.get("stop"),
                launcher_pid=spec.get("launcher_pid"),
            )
            if writer is not None:
                trainer.subscribe(writer)
            dist.barrier()  # every rank checked the name before rank 0 reserves it
            trainer.start()
            while not trainer.join(0.2):
                pass
            return 1 if trainer.status == "failed" else 0
    except Exception as exc:  # before the run started: say why, rank 0 in the event stream
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if writer is not None:
            writer(FailedEvent(reason=reason, model_name=str(spec.get("name", ""))))
        print(f"annowidget train (rank {dist.get_rank()}): error: {reason}", file=sys.stderr)
        return 1
    finally:
        if writer is not None:
            writer.close()
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m annowidget.train.distributed SPEC.json``: what torchrun starts per rank."""
    parser = argparse.ArgumentParser(prog="python -m annowidget.train.distributed")
    parser.add_argument("spec", help="the run's spec.json, written by annowidget.train.launch")
    args = parser.parse_args(argv)
    return run_rank(json.loads(Path(args.spec).read_text(encoding="utf-8")))


__all__ = [
    "DistributedStop",
    "EpochSampler",
    "EventWriter",
    "any_rank",
    "average",
    "backend_for",
    "gather",
    "is_active",
    "local_world_size",
    "rank",
    "run_rank",
    "shard",
    "unwrap",
    "world_size",
    "wrap",
]

if __name__ == "__main__":
    sys.exit(main())
