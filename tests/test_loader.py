"""DataLoaders of a run: workers sized to the machine, the same batches from worker processes
as from the training thread, the decoded-image cache shared out between workers, pinned
memory for CUDA only, prediction's decoding threads."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

import annowidget
from annowidget.store import Project
from annowidget.train import Hyperparameters
from annowidget.train.dataset import DEFAULT_CACHE_BYTES, SnapshotDataset
from annowidget.train.loader import (
    auto_workers,
    eval_loader,
    loader_options,
    resolve_workers,
    train_loader,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The bundled raccoon sample: 24 train and 6 test images with real boxes."""
    return annowidget.sample_project(tmp_path_factory.mktemp("loader") / "sample")


@pytest.mark.parametrize(
    ("device", "cores", "processes", "expected"),
    [
        ("cpu", 2, 1, 0),  # measured: workers slow a 2-core machine down
        ("cpu", 4, 1, 0),
        ("cpu", 16, 1, 4),
        ("cpu", 64, 1, 4),
        ("cuda", 16, 1, 8),  # a GPU must never wait for JPEG decoding
        ("cuda", 16, 4, 3),  # 4 ranks share the cores
        ("cuda", 2, 1, 1),
        ("cuda", 1, 1, 0),
    ],
)
def test_auto_workers_follow_the_cores(
    device: str, cores: int, processes: int, expected: int
) -> None:
    assert auto_workers(device, cores=cores, processes=processes) == expected


def test_the_hyperparameter_wins_over_the_machine() -> None:
    assert resolve_workers(3, CPU) == 3
    assert resolve_workers(0, torch.device("cuda")) == 0
    assert resolve_workers(None, CPU) == auto_workers("cpu")
    assert Hyperparameters.from_dict(Hyperparameters(workers=2).to_dict()).workers == 2
    with pytest.raises(ValueError, match="workers must be a non-negative integer, got -1"):
        Hyperparameters(workers=-1)


def test_memory_is_pinned_and_workers_kept_for_cuda_only() -> None:
    assert loader_options(0, CPU, persistent=True) == {"num_workers": 0, "pin_memory": False}
    cuda = loader_options(4, torch.device("cuda"), persistent=True)
    assert cuda["pin_memory"] is True
    assert (cuda["num_workers"], cuda["persistent_workers"], cuda["prefetch_factor"]) == (
        4,
        True,
        2,
    )


def test_worker_processes_give_the_same_samples_as_the_training_thread(sample: Project) -> None:
    dataset = SnapshotDataset.from_snapshot(
        sample, sample.snapshot("train"), image_size=64, train=True, augment=False
    )
    expected = {dataset.image_ids[i]: dataset[i][0] for i in range(len(dataset))}
    hp = Hyperparameters(batch_size=4, seed=3, num_threads=1, workers=2)
    loader = train_loader(dataset, hp, CPU)
    assert loader.num_workers == 2
    assert loader.persistent_workers  # started once for the whole run
    orders = []
    for _ in range(2):
        order = []
        for images, targets in loader:
            assert len(images) == 4
            for image, target in zip(images, targets, strict=True):
                assert torch.equal(image, expected[target["image_id"]])
                order.append(target["image_id"])
        assert sorted(order) == sorted(expected)  # every image once per epoch
        orders.append(order)
    assert orders[0] != orders[1]  # reshuffled every epoch
    tests = SnapshotDataset.from_snapshot(sample, sample.snapshot("test"), image_size=64)
    ids = [t["image_id"] for _, targets in eval_loader(tests, workers=2) for t in targets]
    assert ids == tests.image_ids  # in order, each image once


class _Budget(Dataset):
    """Reports the decoded-image cache budget of the process that reads it."""

    cache_bytes = DEFAULT_CACHE_BYTES

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        return torch.zeros(1), {"budget": self.cache_bytes}


def test_workers_share_the_cache_budget_of_one_process() -> None:
    loader = train_loader(_Budget(), Hyperparameters(batch_size=1, workers=2), CPU)
    budgets = {t["budget"] for _, targets in loader for t in targets}
    assert budgets == {DEFAULT_CACHE_BYTES // 2}
    assert _Budget.cache_bytes == DEFAULT_CACHE_BYTES  # this process keeps its own


def test_prediction_decodes_ahead_in_threads(sample: Project) -> None:
    from annowidget.models.predict import _batches

    images = sample.images(folder="unlabeled")[:5]
    for threads in (1, 3):
        batches = list(_batches(sample, images, 2, threads=threads))
        assert [[image.id for image, _ in batch] for batch in batches] == [
            [i.id for i in images[k : k + 2]] for k in range(0, 5, 2)
        ]
        assert all(pixels.dtype == torch.uint8 for batch in batches for _, pixels in batch)
