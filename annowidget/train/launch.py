"""Launch a run on several processes through ``torchrun`` and follow it from this one.

:class:`DistributedTraining` starts ``python -m torch.distributed.run`` as a subprocess, in
its own session (a Ctrl-C in the terminal reaches this process alone, which then asks every
rank to stop after the same step, keeping the last completed epoch), and reads rank 0's event
stream (one JSON object per line) as it grows. It has the surface of a
:class:`~annowidget.train.trainer.Trainer` that the CLI and the TrainingPanel use: ``events``
(a queue), ``subscribe``, ``start``, ``stop``, ``join``, ``status``, ``reason``, ``card``,
``epoch``, ``model_dir``, ``running``.

Each rank is :func:`annowidget.train.distributed.run_rank`; the run's folder (a temporary
one) holds ``spec.json`` (what to train), ``events.jsonl``, ``torchrun.log`` and, once Stop is
pressed, ``stop``. On several machines, run the same command on each with ``--nnodes``,
``--node-rank`` and the same ``--rdzv-endpoint`` (node 0's address and a free port); the
project folder must be reachable at the same path on every machine, and node 0 follows the
events.

Example:
    >>> torchrun_command("spec.json", nproc_per_node=2, rdzv_endpoint="127.0.0.1:29500")[1:4]
    ['-m', 'torch.distributed.run', '--nproc-per-node=2']
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from annowidget.store import Project
from annowidget.train.events import FailedEvent, FinishedEvent, TrainingEvent, event_from_dict
from annowidget.train.hyperparameters import Hyperparameters, default_num_threads

Subscriber = Callable[[TrainingEvent], Any]

#: Seconds between two reads of the event stream.
POLL_SECONDS = 0.1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for a one-machine rendezvous).

    Example:
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use, counted without importing torch (a widget asks
    before any training): ``CUDA_VISIBLE_DEVICES`` if set, else the driver's list.

    Example:
        >>> visible_gpus() >= 0
        True
    """
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        return len([d for d in chosen.split(",") if d.strip() and not d.strip().startswith("-")])
    driver = Path("/proc/driver/nvidia/gpus")
    return len(list(driver.iterdir())) if driver.is_dir() else 0


def threads_per_rank(nproc_per_node: int, cores: int | None = None) -> int:
    """CPU threads for each of ``nproc_per_node`` ranks: the default share (all cores but
    one, divided between them), at least 1.

    Example:
        >>> threads_per_rank(2, cores=9)
        4
    """
    total = default_num_threads() if cores is None else max(1, cores - 1)
    return max(1, total // max(1, nproc_per_node))


def torchrun_command(
    spec: str | os.PathLike[str],
    *,
    nproc_per_node: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> list[str]:
    """The ``torchrun`` command line of a run (static rendezvous at ``rdzv_endpoint``;
    127.0.0.1 on a free port for one machine).

    Example:
        >>> torchrun_command("s.json", nproc_per_node=2, rdzv_endpoint="10.0.0.1:29400")[-4:]
        ['--rdzv-endpoint=10.0.0.1:29400', '-m', 'annowidget.train.distributed', 's.json']
    """
    check_layout(nproc_per_node, nnodes, node_rank, rdzv_endpoint)
    endpoint = rdzv_endpoint or f"127.0.0.1:{free_port()}"
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={int(nproc_per_node)}",
        f"--nnodes={int(nnodes)}",
        f"--node-rank={int(node_rank)}",
        "--rdzv-backend=static",
        "--max-restarts=0",
        f"--rdzv-endpoint={endpoint}",
        "-m",
        "annowidget.train.distributed",
        str(spec),
    ]


def check_layout(
    nproc_per_node: int, nnodes: int = 1, node_rank: int = 0, rdzv_endpoint: str | None = None
) -> None:
    """``ValueError`` naming the flag when the process layout cannot work.

    Example:
        >>> check_layout(2, nnodes=2)
        Traceback (most recent call last):
        ...
        ValueError: --rdzv-endpoint HOST:PORT is needed with --nnodes 2 (node 0's address)
    """
    for flag, value, low in (("--nproc-per-node", nproc_per_node, 1), ("--nnodes", nnodes, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{flag} must be a positive whole number, got {value!r}")
    if not isinstance(node_rank, int) or not 0 <= node_rank < nnodes:
        raise ValueError(f"--node-rank must be between 0 and {nnodes - 1}, got {node_rank!r}")
    if nnodes > 1 and not rdzv_endpoint:
        raise ValueError(
            f"--rdzv-endpoint HOST:PORT is needed with --nnodes {nnodes} (node 0's address)"
        )
    if rdzv_endpoint is not None:
        host, _, port = rdzv_endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--rdzv-endpoint must be HOST:PORT, got {rdzv_endpoint!r}")


class DistributedTraining:
    """A :class:`~annowidget.train.trainer.Trainer` run on ``nproc_per_node`` processes
    (times ``nnodes`` machines), launched through torchrun and followed from here.

    Arguments are checked here as the Trainer checks them (a taken name, an unknown base
    model raise ``ValueError`` before any process starts).

    Example:
        >>> # run = DistributedTraining(project, "m2", nproc_per_node=2,
        >>> #                           hyperparameters=Hyperparameters(device="cuda"))
        >>> # run.start(); run.join(); run.status, run.card.latest_metrics
    """

    def __init__(
        self,
        project: Project,
        name: str,
        *,
        task: str = "detection",
        base_model: str | None = None,
        hyperparameters: Hyperparameters | None = None,
        train_folders: Sequence[str] = ("train",),
        test_folders: Sequence[str] | None = ("test",),
        description: str = "",
        pretrained: bool = True,
        nproc_per_node: int = 2,
        nnodes: int = 1,
        node_rank: int = 0,
        rdzv_endpoint: str | None = None,
    ) -> None:
        from annowidget.train.trainer import Trainer

        check_layout(nproc_per_node, nnodes, node_rank, rdzv_endpoint)
        hp = hyperparameters or Hyperparameters(num_threads=threads_per_rank(nproc_per_node))
        # the ranks build the same Trainer: its checks run here first, in one process
        checked = Trainer(
            project,
            name,
            task=task,
            base_model=base_model,
            hyperparameters=hp,
            train_folders=train_folders,
            test_folders=test_folders,
            description=description,
            pretrained=pretrained,
        )
        self._check_devices(hp.device, nproc_per_node)
        self.project = project
        self.name = checked.name
        self.task = checked.task
        self.hyperparameters = hp
        self.registry = checked.registry
        self.layout = {
            "nproc_per_node": nproc_per_node,
            "nnodes": nnodes,
            "node_rank": node_rank,
            "rdzv_endpoint": rdzv_endpoint,
        }
        self._spec: dict[str, Any] = {
            "project": str(project.root),
            "name": checked.name,
            "task": checked.task,
            "base_model": base_model,
            "hyperparameters": hp.to_dict(),
            "train_folders": list(checked.train_folders),
            "test_folders": None if checked.test_folders is None else list(checked.test_folders),
            "description": description,
            "pretrained": bool(pretrained),
            "launcher_pid": os.getpid(),
        }
        self.events: queue.Queue[TrainingEvent] = queue.Queue()
        self.card: Any = None
        self.epoch = 0
        self.reason = ""
        self.run_dir: Path | None = None
        self._status = "idle"
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @staticmethod
    def _check_devices(device: str, nproc_per_node: int) -> None:
        if device == "cpu" or device == "mps":
            if device == "mps":
                raise ValueError("device mps cannot run several processes: use cpu or cuda")
            return
        import torch

        if device == "auto" and not torch.cuda.is_available():
            return
        visible = torch.cuda.device_count()
        if nproc_per_node > visible:
            raise ValueError(
                f"--nproc-per-node {nproc_per_node} needs {nproc_per_node} GPUs, "
                f"torch sees {visible}"
            )

    # ------------------------------------------------------------------ Trainer's surface
    @property
    def status(self) -> str:
        """``idle``, ``running``, ``stopping``, ``finished``, ``stopped`` or ``failed``."""
        return self._status

    @property
    def model_dir(self) -> Path:
        return self.registry.model_dir(self.name)

    @property
    def running(self) -> bool:
        return self._process is not None and not self._done.is_set()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` (from the reading thread) for every event; returns an
        unsubscribe function."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def start(self) -> DistributedTraining:
        """Write the run's spec and start torchrun; events arrive as rank 0 writes them."""
        if self._status != "idle":
            raise RuntimeError(f"run {self.name!r} was already started ({self._status})")
        self.run_dir = Path(tempfile.mkdtemp(prefix="annowidget-torchrun-"))
        spec = dict(self._spec)
        spec["events"] = str(self.run_dir / "events.jsonl")
        spec["stop"] = str(self.run_dir / "stop")
        spec_path = self.run_dir / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        (self.run_dir / "events.jsonl").touch()
        command = torchrun_command(spec_path, **self.layout)
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = str(self.hyperparameters.num_threads)
        # the ranks import this very package, wherever it was imported from
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        with open(self.run_dir / "torchrun.log", "wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._status = "running"
        self._reader = threading.Thread(
            target=self._follow, name=f"annowidget-torchrun-{self.name}", daemon=True
        )
        self._reader.start()
        return self

    def stop(self) -> None:
        """Ask every rank to stop after the same step; the last completed epoch is kept."""
        if self.run_dir is not None:
            (self.run_dir / "stop").touch()
        with self._lock:
            if self._status == "running":
                self._status = "stopping"

    def abort(self) -> None:
        """End every rank now (SIGTERM to torchrun's process group); files stay whole."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; ``True`` if it has ended (``False`` on timeout)."""
        if self._process is None:
            return self._status != "idle"
        return self._done.wait(timeout)

    def run(self) -> Any:
        """Start, wait for the end and return the final card (blocking; for scripts)."""
        self.start()
        try:
            while not self.join(0.2):
                pass
        except KeyboardInterrupt:
            self.stop()
            self.join()
        return self.card

    # ------------------------------------------------------------------ following
    def _dispatch(self, event: TrainingEvent) -> None:
        if isinstance(event, FinishedEvent | FailedEvent):
            self.epoch = event.epoch
            self.reason = event.reason
        elif getattr(event, "kind", "") == "epoch":
            self.epoch = event.epoch  # type: ignore[attr-defined]
        self.events.put(event)
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # a UI bug must not stop following the run
                with self._lock:
                    if fn in self._subscribers:
                        self._subscribers.remove(fn)

    def _follow(self) -> None:
        assert self._process is not None
        assert self.run_dir is not None
        final: TrainingEvent | None = None
        try:
            with open(self.run_dir / "events.jsonl", encoding="utf-8") as stream:
                pending = ""
                while True:
                    exited = self._process.poll() is not None
                    chunk = stream.read()
                    pending += chunk
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        if line.strip():
                            event = event_from_dict(json.loads(line))
                            if isinstance(event, FinishedEvent | FailedEvent):
                                final = event
                            self._settle(event)
                    if exited and not chunk:
                        break
                    time.sleep(POLL_SECONDS)
            self._conclude(final)
        except BaseException as exc:  # never leave the caller waiting forever
            self.reason = f"could not follow the run: {exc}"
            self._status = "failed"
        finally:
            self._done.set()

    def _settle(self, event: TrainingEvent) -> None:
        if isinstance(event, FinishedEvent | FailedEvent):
            # the card is on disk before the final event is written (rank 0's Trainer)
            self.card = self._load_card()
            with self._lock:
                self._status = event.status if isinstance(event, FinishedEvent) else "failed"
        self._dispatch(event)

    def _load_card(self) -> Any:
        try:
            return self.registry.card(self.name)
        except (KeyError, ValueError):
            return None

    def _conclude(self, final: TrainingEvent | None) -> None:
        """After torchrun exited: the status from the last event, else from the card (the
        ranks of another machine), else a failure with the ranks' last error."""
        assert self._process is not None
        assert self.run_dir is not None
        code = self._process.returncode
        if final is None:
            card = self._load_card()
            self.card = card
            if card is not None and card.status in ("finished", "stopped", "failed"):
                self.reason = card.status_reason
                self._status = card.status
            else:
                self.reason = self._failure_reason(code)
                if card is not None and card.status == "training":
                    card.status = "failed"
                    card.status_reason = self.reason
                    self.registry.save_card(card)
                self._status = "failed"
                self._dispatch(FailedEvent(reason=self.reason, model_name=self.name))
        if self._status != "failed":
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _failure_reason(self, code: int | None) -> str:
        assert self.run_dir is not None
        log = self.run_dir / "torchrun.log"
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        errors = [line for line in lines if "error:" in line and "annowidget" in line]
        last = errors[-1] if errors else next((x for x in reversed(lines) if x.strip()), "")
        return (
            f"the ranks ended (torchrun exit code {code}) without a result: {last.strip()} "
            f"(log: {log})"
        )


__all__ = [
    "DistributedTraining",
    "check_layout",
    "free_port",
    "threads_per_rank",
    "torchrun_command",
    "visible_gpus",
]
