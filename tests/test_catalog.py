"""The base-model catalog is torch-free, and its hard-coded facts are torchvision's.

The catalog writes down what torchvision's weight objects hold (file, URL, label names) so
that listing models never imports torch (issue 14, item 12); these tests hold every entry
against torchvision itself, so the table cannot drift when torchvision changes.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pytest
from torchvision.models import get_model_weights, get_weight

from annowidget.models import catalog
from annowidget.models.catalog import BASE_MODELS, list_base_models, torchvision_weights


@pytest.mark.parametrize("name", [m.name for m in list_base_models() if not m.offline])
def test_a_torchvision_entry_matches_its_weights_object(name: str) -> None:
    base = BASE_MODELS[name]
    weights = get_weight(base.weights_enum)
    # the weights torchvision recommends for this builder, not some other member
    assert weights is get_model_weights(name).DEFAULT
    assert torchvision_weights(name) is weights
    assert base.weights_url == weights.url
    assert base.weights_file == os.path.basename(urlparse(weights.url).path)
    assert base.coco_categories == tuple(weights.meta["categories"])
    assert base.keypoint_names == tuple(weights.meta.get("keypoint_names", ()))


@pytest.mark.parametrize("name", [m.name for m in list_base_models() if m.offline])
def test_an_offline_entry_names_torchvisions_imagenet_mobilenet_v2(name: str) -> None:
    from torchvision.models import MobileNet_V2_Weights

    base = BASE_MODELS[name]
    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    assert get_weight(catalog.OFFLINE_BACKBONE_WEIGHTS) is weights
    assert torchvision_weights(name) is weights
    assert base.weights_url == weights.url
    assert base.weights_file == os.path.basename(urlparse(weights.url).path)
    assert (base.coco_categories, base.keypoint_names) == ((), ())
