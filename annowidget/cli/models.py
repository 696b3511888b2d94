"""CLI commands on models: ``train``, ``predict``, ``evaluate`` and ``models``.

They call what the notebook's panels call (``Trainer``, ``predict_images``,
``evaluate_model``, ``ModelRegistry``). Ctrl-C during ``train`` works like the Stop button:
the last completed epoch is kept, checkpointed, evaluated and saved as the weights.

Example:
    $ annowidget train raccoons --name raccoons-v1 --epochs 6 --image-size 320
    $ annowidget evaluate raccoons --model raccoons-v1 --folder test --json
    $ annowidget predict raccoons --model raccoons-v1 --folder unlabeled --threshold 0.4
    $ annowidget models raccoons
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

from annowidget.cli.errors import CommandError, check_folders
from annowidget.models.card import describe_metrics as _metrics_line
from annowidget.models.tasks import TASKS
from annowidget.store import Project
from annowidget.train.hyperparameters import (
    PRECISIONS,
    HyperparameterField,
    Hyperparameters,
    check_device,
    hyperparameter_fields,
)

# torch and the model zoo are imported inside the handlers: `annowidget --help` stays quick.


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``predict``, ``evaluate`` and ``models`` to the ``annowidget`` parser."""
    train = subparsers.add_parser(
        "train", help="fine-tune a base model on the project's reviewed images"
    )
    train.add_argument("project")
    train.add_argument("--name", required=True, help="name of the new model (unique)")
    train.add_argument("--task", default="detection", choices=TASKS)
    train.add_argument(
        "--base",
        metavar="MODEL",
        help="a zoo base model or a finished/stopped model of the project (warm start); "
        "default: the project's newest finished model of the task, else the best zoo model "
        "available offline",
    )
    train.add_argument(
        "--train-folder", action="append", metavar="F", help="train folder (repeatable; train)"
    )
    train.add_argument(
        "--test-folder", action="append", metavar="F", help="test folder (repeatable; test)"
    )
    add_hyperparameter_flags(train)
    scale = train.add_argument_group("several GPUs or machines (torchrun, DistributedDataParallel)")
    scale.add_argument(
        "--nproc-per-node", type=int, metavar="N", help="train on N processes (GPUs) here"
    )
    scale.add_argument("--nnodes", type=int, default=1, metavar="M", help="machines (1)")
    scale.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine (0)")
    scale.add_argument(
        "--rdzv-endpoint", metavar="HOST:PORT", help="machine 0's address and a free port"
    )
    train.add_argument(
        "--scratch", action="store_true", help="random initial weights (no pretraining)"
    )
    train.add_argument("--description", default="")
    train.add_argument("--json", action="store_true", help="print the final model card as JSON")
    train.set_defaults(handler=_train)

    predict = subparsers.add_parser("predict", help="pre-label images with a model")
    predict.add_argument("project")
    predict.add_argument("--model", required=True, help="trained or base model name")
    predict.add_argument("--folder", metavar="F", help="only this folder (default: all)")
    predict.add_argument("--unlabeled", action="store_true", help="only unlabeled images")
    predict.add_argument("--threshold", type=float, default=0.5, help="minimum score (0.5)")
    predict.add_argument("--batch-size", type=int, default=4)
    predict.add_argument("--device", default="auto")
    predict.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="inference precision (fp32)"
    )
    predict.add_argument("--json", action="store_true", help="print the report as JSON")
    predict.set_defaults(handler=_predict)

    evaluate = subparsers.add_parser(
        "evaluate", help="COCO AP, AP50, AP75 and per-class AP of a model on a folder"
    )
    evaluate.add_argument("project")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--folder", required=True, action="append", metavar="F")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(handler=_evaluate)

    models = subparsers.add_parser("models", help="trained and base models of a project")
    models.add_argument("project")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.add_argument(
        "--delete", metavar="NAME", help="delete this trained model and its files (frees its name)"
    )
    models.set_defaults(handler=_models)


# --------------------------------------------------------------------------------- train
def add_hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``Hyperparameters`` field, from its declaration (label, help, flag).

    A flag not given leaves the field at the dataclass default (the attribute is absent);
    optional numbers take ``auto``; booleans get ``--flag`` and ``--no-flag``.
    """
    group = parser.add_argument_group("hyperparameters (defaults: the TrainingPanel's)")
    for spec in hyperparameter_fields():
        default = "auto" if spec.default is None else spec.format(spec.default)
        text = f"{spec.help} (default: {default})".replace("%", "%%")
        if spec.kind == "bool":
            group.add_argument(
                spec.flag,
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
            continue
        group.add_argument(
            spec.flag,
            dest=spec.name,
            type=_argument_type(spec),
            default=argparse.SUPPRESS,
            metavar="|".join(spec.choices) if spec.choices else spec.kind.upper(),
            help=text,
        )


def _argument_type(spec: HyperparameterField) -> Any:
    def parse(text: str) -> Any:
        try:
            return spec.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = spec.kind
    return parse


def hyperparameters_from_args(args: argparse.Namespace) -> Hyperparameters:
    """The ``Hyperparameters`` the flags of ``train`` ask for (``ValueError`` names a field).

    Example:
        >>> from annowidget.cli import build_parser
        >>> args = build_parser().parse_args(["train", "p", "--name", "m", "--momentum", "0.8"])
        >>> hyperparameters_from_args(args).momentum
        0.8
    """
    given = {
        spec.name: getattr(args, spec.name)
        for spec in hyperparameter_fields()
        if hasattr(args, spec.name)
    }
    return Hyperparameters(**given)


class _Progress:
    """Training progress on stderr.

    On a terminal: a tqdm bar per epoch. Always: one line per epoch (loss, lr, seconds, ETA)
    and one per evaluation, so a log file, CI or ``nohup`` sees the run move instead of
    minutes of silence.
    """

    def __init__(self, epochs: int, stream: Any = None) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.epochs = epochs
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar: Any = None

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "step":
            if not self.tty:
                return
            if self.bar is None:
                self.bar = self._tqdm(
                    total=event.steps_per_epoch,
                    desc=f"epoch {event.epoch}/{self.epochs}",
                    unit="step",
                    file=self.stream,
                    leave=False,
                )
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{event.loss:.3f}", lr=f"{event.lr:.2g}", refresh=False)
        elif kind in ("epoch", "finished", "failed"):
            self.close()
            if kind == "epoch":
                self._line(_epoch_line(event))
        elif kind == "eval":
            self._line(f"epoch {event.epoch}: {_metrics_line(event.metrics)}")
        elif kind == "warning":
            self._line(f"annowidget train: warning: {event.message}")

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _epoch_line(event: Any) -> str:
    """``epoch 3/12: loss 0.4123, lr 0.005, 12.3 s, ETA 1 min 51 s``."""
    left = event.epochs - event.epoch
    eta = event.elapsed / max(event.epoch, 1) * left  # evaluations included
    return (
        f"epoch {event.epoch}/{event.epochs}: loss {event.loss:.4f}, lr {event.lr:.3g}, "
        f"{event.seconds:.1f} s, ETA {_duration(eta)}"
    )


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _train(args: argparse.Namespace) -> int:
    from annowidget.train.trainer import Trainer

    hp = hyperparameters_from_args(args)
    split = hasattr(args, "split_ratio")
    test_folders = None if split else (args.test_folder or ["test"])
    if split and args.test_folder:
        raise CommandError("give either --test-folder or --split-ratio, not both")
    with Project.open(args.project) as project:
        common: dict[str, Any] = {
            "task": args.task,
            "base_model": args.base,
            "train_folders": args.train_folder or ["train"],
            "test_folders": test_folders,
            "description": args.description,
            "pretrained": not args.scratch,
        }
        if args.nproc_per_node is not None or args.nnodes > 1:
            from annowidget.train.launch import DistributedTraining, threads_per_rank

            nproc = args.nproc_per_node or 1
            if not hasattr(args, "num_threads"):  # the cores are shared by the ranks
                hp = hp.replace(num_threads=threads_per_rank(nproc))
            trainer: Any = DistributedTraining(
                project,
                args.name,
                hyperparameters=hp,
                nproc_per_node=nproc,
                nnodes=args.nnodes,
                node_rank=args.node_rank,
                rdzv_endpoint=args.rdzv_endpoint,
                **common,
            )
        else:
            trainer = Trainer(project, args.name, hyperparameters=hp, **common)
        progress = _Progress(hp.epochs)
        trainer.subscribe(progress)
        with _graceful_signals():
            trainer.start()
            stopped_by = _wait(trainer)
        progress.close()
        card = trainer.card
    if card is None:  # a run on several processes that failed before it registered a model
        raise CommandError(trainer.reason or "the run ended without a model")
    if args.json:
        print(json.dumps(card.to_dict()))  # its status and status_reason say how it ended
    else:
        latest = card.latest_metrics
        metrics = f"; {_metrics_line(latest)} (epoch {latest['epoch']})" if latest else ""
        print(f"model {card.name}: {trainer.status} ({trainer.reason}){metrics}")
        if trainer.status in ("finished", "stopped") and trainer.epoch:
            print(f"weights: {trainer.model_dir / 'weights.safetensors'}")
    if trainer.status == "failed":
        print(f"annowidget train: error: {trainer.reason}", file=sys.stderr)
        return 1
    return stopped_by


class _Signalled(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) during training: handled exactly like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _graceful_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP stop the run gracefully while training; restored after.

    SIGINT gets Python's handler even when the process started with it ignored (a job
    started with ``cmd &`` by a non-interactive shell), so Ctrl-C and ``kill -INT`` always
    work. SIGTERM is what schedulers, ``timeout`` and container runtimes send. SIGHUP is
    handled only where it would kill us; ``nohup`` (SIGHUP ignored) keeps its meaning.
    """

    def stop(signum: int, frame: Any) -> None:
        raise _Signalled(signum)

    wanted = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: stop}
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        wanted[signal.SIGHUP] = stop
    previous: dict[int, Any] = {}
    try:
        for signum, handler in wanted.items():
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: leave the process's signals alone
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait(trainer: Any) -> int:
    """Wait for the run; returns 0, or 128 + the signal that stopped it.

    The first Ctrl-C (or SIGTERM) stops the run, keeping the last completed epoch; a second
    one aborts.
    """
    try:
        while not trainer.join(0.2):
            pass
        return 0
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
        trainer.stop()
        again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        prefix = "\n" if signum == signal.SIGINT else f"{signal.Signals(signum).name}: "
        print(
            f"{prefix}annowidget train: stopping after the current step; keeping the last "
            f"completed epoch ({again} again to abort)",
            file=sys.stderr,
            flush=True,
        )
    try:
        while not trainer.join(0.2):
            pass
    except KeyboardInterrupt:
        # Leave now without tearing down the interpreter under a thread still inside torch
        # (that aborts the process). Files on disk are whole: every write is atomic.
        abort = getattr(trainer, "abort", None)  # a torchrun launch: end its ranks too
        if abort is not None:
            abort()
        print("annowidget train: aborted; the model keeps its last checkpoint", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(128 + int(signum))
    return 128 + int(signum)


# ------------------------------------------------------------------------------- predict
def _check_predict_args(args: argparse.Namespace) -> None:
    """Refuse bad values before anything runs: predict replaces pending predictions."""
    if not (math.isfinite(args.threshold) and 0.0 <= args.threshold <= 1.0):
        raise CommandError(f"threshold must be between 0 and 1, got {args.threshold!r}")
    if args.batch_size <= 0:
        raise CommandError(f"batch_size must be a positive integer, got {args.batch_size!r}")
    check_device(args.device)


def _predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from annowidget.models.predict import predict_images
    from annowidget.train.engine import resolve_device

    _check_predict_args(args)
    device = resolve_device(args.device)
    with Project.open(args.project) as project:
        check_folders(project, [args.folder] if args.folder else None)
        bar = tqdm(desc="predict", unit="image", file=sys.stderr, disable=None, leave=False)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = predict_images(
                project,
                args.model,
                folder=args.folder,
                unlabeled=args.unlabeled,
                threshold=args.threshold,
                batch_size=args.batch_size,
                device=device,
                progress=progress,
                precision=args.precision,
            )
        finally:
            bar.close()
    if args.json:
        print(
            json.dumps(
                {
                    "model": report.model,
                    "images": report.images,
                    "predictions": report.predictions,
                    "per_category": report.per_category,
                    "dropped": report.dropped,
                    "failed": [{"image_id": i, "reason": r} for i, r in report.failed],
                    "seconds": round(report.seconds, 3),
                    "seconds_per_image": round(report.seconds_per_image, 4),
                }
            )
        )
    else:
        per = ", ".join(f"{n} {k}" for k, n in sorted(report.per_category.items())) or "none"
        print(
            f"{report.model}: {report.predictions} predictions on {report.images} images "
            f"({per}); {report.seconds_per_image:.3f} s per image"
        )
        for image_id, reason in report.failed:
            print(f"annowidget predict: skipped image {image_id}: {reason}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------ evaluate
def _evaluate(args: argparse.Namespace) -> int:
    from annowidget.train.engine import resolve_device
    from annowidget.train.scoring import evaluate_model

    device = resolve_device(check_device(args.device))
    with Project.open(args.project) as project:
        check_folders(project, args.folder)
        metrics = evaluate_model(project, args.model, args.folder, device=device)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{args.model} on {', '.join(args.folder)}: {_metrics_line(metrics)}")
    for name, value in metrics.get("per_class", {}).items():
        label = "IoU" if "mIoU" in metrics else "AP"
        print(f"  {name}: {label} {_num(value)}")
    return 0


# -------------------------------------------------------------------------------- models
def _models(args: argparse.Namespace) -> int:
    from annowidget.models.registry import ModelRegistry, describe_lineage

    with Project.open(args.project) as project:
        registry = ModelRegistry(project)
        if args.delete is not None:
            try:
                registry.delete(args.delete)
            except KeyError as exc:  # str(KeyError) would quote the message
                raise CommandError(exc.args[0]) from None
            print(f"deleted model {args.delete}")
            return 0
        entries = registry.list()
        lineage = {e.name: registry.lineage(e.name) for e in entries if e.kind == "trained"}
    if args.json:
        rows = [
            {
                "name": e.name,
                "kind": e.kind,
                "task": e.task,
                "ready": e.ready,
                "description": e.description,
                "card": e.card.to_dict() if e.card is not None else None,
                "lineage": lineage.get(e.name, [e.name]),
            }
            for e in entries
        ]
        print(json.dumps(rows))
        return 0
    for e in entries:
        ready = "ready" if e.ready else "not ready"
        detail = e.description
        if e.card is not None and e.kind == "trained":
            latest = e.card.latest_metrics
            quality = _metrics_line(latest) if latest else "not evaluated"
            base = describe_lineage(lineage[e.name]) or e.card.base_model
            detail = f"{e.card.status}, base {base}, {quality}"
        print(f"{e.kind:7}  {e.name:40}  {e.task:21}  {ready:9}  {detail}")
    return 0
