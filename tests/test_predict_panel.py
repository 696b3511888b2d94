"""The PredictPanel's widget state without a browser: the model list (and its refresh when a
TrainingPanel run ends, and each trained model's lineage), scope validation, and real
prediction runs of a tiny trained model."""

from __future__ import annotations

import pytest

import annowidget
from annowidget.cli import main
from annowidget.models.predict import PredictionReport
from annowidget.models.registry import ModelEntry, ModelRegistry
from annowidget.store import Project
from annowidget.train import Trainer
from annowidget.train.hyperparameters import Hyperparameters
from annowidget.widgets.predict_panel import PredictPanel, describe_report, model_label
from annowidget.widgets.training_panel import TrainingPanel

TINY = {"image_size": 64, "batch_size": 2, "num_threads": 1, "epochs": 1}


def _tiny_project(path) -> Project:
    project = annowidget.sample_project(path)
    spare = [i.id for i in project.images(folder="train")[4:]]
    spare += [i.id for i in project.images(folder="test")[2:]]
    project.move_images(spare, "spare")
    return project


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Project:
    """A project with one tiny trained model, "m1" (trained once for the whole module)."""
    project = _tiny_project(tmp_path_factory.mktemp("predict") / "sample")
    Trainer(project, "m1", hyperparameters=Hyperparameters(**TINY)).run()
    return project


def test_model_list_has_trained_models_first_and_no_untrained_heads(trained):
    panel = PredictPanel(trained)
    names = [name for _, name in panel.model.options]
    assert names[0] == "m1"
    assert panel.model.value == "m1"
    # the offline family has untrained heads: offered for training, not for prediction
    assert "fasterrcnn_mobilenet_v2_fpn" not in names
    assert "fasterrcnn_resnet50_fpn_v2" in names
    label = {name: label for label, name in panel.model.options}["m1"]
    assert label.startswith("m1 · trained · detection")


def test_model_labels_say_what_is_not_ready():
    assert model_label(ModelEntry("m", "trained", "detection", "", False)).endswith("(not ready)")
    base = model_label(ModelEntry("b", "base", "detection", "", False))
    assert base.endswith("(⇩ needs download)")


def test_a_model_trained_in_the_panel_appears_without_rerunning_anything(tmp_path):
    project = _tiny_project(tmp_path / "sample")
    training = TrainingPanel(project, hyperparameters=TINY, interval=0.1)
    panel = PredictPanel(project, training_panel=training)
    assert "model-1" not in [name for _, name in panel.model.options]
    training.run()
    training.wait(timeout=120)
    assert training.state == "finished"
    assert next(name for _, name in panel.model.options) == "model-1"
    assert panel.model.value == "model-1"


def test_scope_and_readiness_errors_are_shown_not_raised(trained):
    panel = PredictPanel(trained, scope="selected images", selection=list)
    panel.run_button.click()
    assert "no images selected" in panel.message.value
    assert panel.state == "idle"
    not_ready = [e for e in panel._entries.values() if not e.ready]
    if not_ready:  # COCO weights absent (the usual offline case)
        panel.scope.value = "all unlabeled"
        panel.model.value = not_ready[0].name
        assert panel.run() is False
        assert "is not ready" in panel.message.value
    with pytest.raises(ValueError, match="scope"):
        PredictPanel(trained, scope="everything")
    with pytest.raises(ValueError, match="threshold"):
        PredictPanel(trained, threshold=2)


def test_run_on_a_folder_stores_predictions_above_the_threshold(trained):
    panel = PredictPanel(trained, model="m1", scope="folder", folder="unlabeled", interval=0.05)
    panel.threshold.value = 0.05
    reports = []
    panel.on_done(reports.append)
    assert panel.folder.layout.display is None  # the folder picker shows for this scope
    assert panel.run() is True
    assert panel.run_button.disabled
    report = panel.wait(timeout=120)
    assert isinstance(report, PredictionReport)
    assert reports == [report]
    assert panel.state == "done"
    assert not panel.run_button.disabled
    unlabeled = trained.images(folder="unlabeled")
    assert report.images == len(unlabeled) == 10
    assert panel.progress.value == panel.progress.max == 10
    predictions = [
        a for image in unlabeled for a in trained.annotations(image.id, predictions=True)
    ]
    assert len(predictions) == report.predictions
    assert all(a.score >= 0.05 for a in predictions)
    assert f"{report.predictions} boxes on 10 images" in panel.message.value


def test_run_on_selected_images_touches_only_those(trained):
    targets = [image.id for image in trained.images(folder="spare")[:2]]
    before = {i.id: trained.annotations(i.id) for i in trained.images(folder="spare")[2:4]}
    panel = PredictPanel(
        trained, model="m1", scope="selected images", selection=lambda: targets, interval=0.05
    )
    panel.threshold.value = 0.0
    panel.run()
    report = panel.wait(timeout=120)
    assert report.images == 2
    after = {i: trained.annotations(i) for i in before}
    assert after == before
    assert panel.folder.layout.display == "none"


def test_describe_report_mentions_failures_and_dropped_classes():
    report = PredictionReport(
        "m", images=3, predictions=5, dropped=2, failed=[(7, "truncated")], seconds=3.0
    )
    text = describe_report(report)
    assert "5 boxes on 3 images" in text
    assert "2 boxes of classes the project does not have" in text
    assert "image 7: truncated" in text


def test_the_model_list_shows_each_trained_models_lineage_and_test_scores(tmp_path, capsys):
    # two real rounds: m1 from the zoo, m2 warm-started from m1 (issue 11, item 1)
    project = _tiny_project(tmp_path / "sample")
    Trainer(project, "m1", hyperparameters=Hyperparameters(**TINY)).run()
    Trainer(project, "m2", base_model="m1", hyperparameters=Hyperparameters(**TINY)).run()
    registry = ModelRegistry(project)
    m1, m2 = registry.card("m1"), registry.card("m2")
    assert (m2.parent, m2.base_model) == ("m1", m1.base_model)
    zoo_base = m1.base_model

    panel = PredictPanel(project)
    labels = {name: label for label, name in panel.model.options}
    assert labels["m2"].startswith("m2 · trained · detection · AP ")
    assert labels["m2"].endswith(" · from m1")
    assert "from" not in labels["m1"]  # started from the zoo: no parent in the project

    panel.model.value = "m2"
    help_text = panel.model_help.value
    assert f"from m1 ← {zoo_base} · finished · " in help_text
    latest = m2.metrics[-1]
    assert f"AP {latest['AP']:.3f}, AP50 {latest['AP50']:.3f}" in help_text
    assert f"on {len(project.images(folder='test'))} images (test)" in help_text
    panel.model.value = "m1"
    assert f"from {zoo_base} · finished · AP {m1.metrics[-1]['AP']:.3f}" in panel.model_help.value

    # the CLI words the same lineage, from the same function
    assert main(["models", str(project.root)]) == 0
    rows = capsys.readouterr().out.splitlines()
    line = next(row for row in rows if row.startswith("trained  m2"))
    assert f"base m1 <- {zoo_base}" in line
