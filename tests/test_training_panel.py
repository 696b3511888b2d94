"""The TrainingPanel's widget state without a browser: form defaults and validation, the
folder-overlap warning, and the Run/Stop state machine driven by real (tiny) training runs."""

from __future__ import annotations

import dataclasses
import time

import pytest

import annowidget
from annowidget.models.card import WEIGHTS_FILE, ModelCard
from annowidget.models.registry import ModelRegistry
from annowidget.models.zoo import default_base_model
from annowidget.store import Project
from annowidget.train.events import EpochEvent, FinishedEvent, StepEvent
from annowidget.train.hyperparameters import Hyperparameters
from annowidget.widgets._hyperparameter_form import MAIN_FIELDS
from annowidget.widgets._run_history import RunHistory, format_seconds, quality_verdict
from annowidget.widgets._throttle import Pump
from annowidget.widgets.training_panel import TrainingPanel

# 4 training images of 64 px, batch 2, one thread: a step takes well under a second.
TINY = {"image_size": 64, "batch_size": 2, "num_threads": 1, "epochs": 1}


@pytest.fixture
def project(tmp_path) -> Project:
    project = annowidget.sample_project(tmp_path / "sample")
    spare = [i.id for i in project.images(folder="train")[4:]]
    spare += [i.id for i in project.images(folder="test")[2:]]
    project.move_images(spare, "spare")
    return project


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the panel")
        time.sleep(0.05)


def test_form_starts_from_the_engine_defaults_with_help_text(project):
    panel = TrainingPanel(project)
    defaults = Hyperparameters()
    for field in dataclasses.fields(Hyperparameters):
        value = panel.form.inputs[field.name].value
        expected = getattr(defaults, field.name)
        assert value == ("" if expected is None else expected), field.name
    for name in MAIN_FIELDS:
        assert panel.form.help[name], name
        assert panel.form.inputs[name].tooltip == panel.form.help[name]
    labels = {panel.form.inputs[n].description for n in MAIN_FIELDS}
    assert {"epochs for gamma", "RoIs per image", "evaluation period"} <= labels
    assert panel.hyperparameters() == defaults
    assert panel.name.value == "model-1"
    assert panel.train_folders.value == ("train",)
    assert panel.test_folders.value == ("test",)


def test_the_pretrained_checkbox_label_is_not_cut_off(project):
    panel = TrainingPanel(project)
    assert panel.pretrained.description == "start from pre-trained weights (transfer learning)"
    assert panel.pretrained.layout.width == "auto"  # not the 300 px default that cut it


def test_base_models_say_which_weights_are_offline_and_follow_the_task(project):
    panel = TrainingPanel(project)
    labels = dict(panel.base_model.options)
    offline = next(label for label, name in labels.items() if name == "fasterrcnn_mobilenet_v2_fpn")
    assert "✓ offline" in offline
    assert panel.base_model.value == default_base_model("detection")
    assert "MobileNetV2" in panel.base_model_help.value or panel.base_model_help.value
    panel.task.value = "keypoints"
    assert {name for _, name in panel.base_model.options} == {
        "keypointrcnn_resnet50_fpn",
        "keypointrcnn_mobilenet_v2_fpn",
    }
    assert panel.base_model.value == default_base_model("keypoints")


def test_overlapping_folders_warn_and_run_shows_the_refusal(project):
    panel = TrainingPanel(project, hyperparameters=TINY)
    assert panel.folder_warning.value == ""
    panel.test_folders.value = ("test", "train")
    assert panel.folders_overlap
    assert "share train" in panel.folder_warning.value
    assert panel.run() is None
    assert "in both train and test" in panel.message.value
    assert panel.state == "idle"
    panel.test_folders.value = ()
    assert "split" in panel.folder_warning.value
    assert not panel.folders_overlap


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be a positive integer"),
        ("learning_rate", -1.0, "learning_rate must be a positive number"),
        ("split_ratio", 1.5, "split_ratio must be between 0 and 1"),
        ("image_size", "big", "image_size must be a whole number or empty"),
    ],
)
def test_bad_values_are_shown_in_the_panel_not_raised(project, field, value, message):
    panel = TrainingPanel(project)
    panel.form.inputs[field].value = value
    panel.run_button.click()  # what the browser does; must not raise
    assert message in panel.message.value
    assert panel.state == "idle"
    assert not panel.run_button.disabled
    assert panel.stop_button.disabled
    assert not (project.models_dir / "model-1").exists()


def test_bad_names_and_empty_train_folders_are_shown(project):
    panel = TrainingPanel(project, hyperparameters=TINY)
    panel.name.value = "../escape"
    panel.run()
    assert "invalid model name" in panel.message.value
    panel.name.value = "fasterrcnn_mobilenet_v2_fpn"
    panel.run()
    assert "base model" in panel.message.value
    ModelRegistry(project).reserve("taken", ModelCard("taken", "detection", "b", ["raccoon"]))
    panel.name.value = "taken"
    panel.run()
    assert "already exists" in panel.message.value
    panel.name.value = "ok"
    panel.train_folders.value = ()
    panel.run()
    assert "train folders" in panel.message.value
    assert panel.state == "idle"


def test_run_returns_at_once_then_finishes_with_curves_and_a_new_name(project):
    panel = TrainingPanel(project, hyperparameters=TINY, interval=0.1)
    finished = []
    panel.on_finished(finished.append)
    started = time.perf_counter()
    trainer = panel.run()
    returned_after = time.perf_counter() - started
    assert trainer is not None
    assert returned_after < 5.0, "Run must not wait for training"
    assert panel.state == "running"
    assert panel.run_button.disabled
    assert not panel.stop_button.disabled
    assert panel.form.inputs["epochs"].disabled
    assert panel.run() is trainer  # a second click starts nothing

    event = panel.wait(timeout=120)
    assert isinstance(event, FinishedEvent)
    assert event.status == "finished"
    assert panel.state == "finished"
    assert not panel.run_button.disabled
    assert panel.stop_button.disabled
    assert not panel.form.inputs["epochs"].disabled
    assert panel.progress.value == 1.0
    assert "finished: model <b>model-1</b>" in panel.message.value
    # one tiny epoch: whatever AP it reached, the message says it in numbers and only a
    # model that finds something is called ready (in green)
    ap = panel.history.last_metrics["AP"]
    assert "on 2 test images" in panel.message.value
    if round(ap, 2) == 0:
        assert "found nothing yet; train longer or check the labels" in panel.message.value
        assert "is ready" not in panel.message.value
        assert "#2e7d32" not in panel.message.value
    else:
        assert "is ready" in panel.message.value
    traces = {trace.name: trace for trace in panel.figure.data}
    assert len(traces["loss"].y) == 2  # 4 images / batch 2
    assert "loss_classifier" in traces
    assert list(traces["AP"].x) == [1]
    assert finished == [event]
    assert panel.name.value == "model-2"
    assert (project.models_dir / "model-1" / WEIGHTS_FILE).is_file()

    panel.name.value = "raccoons-7"
    panel.run()
    panel.wait(timeout=120)
    assert panel.name.value == "raccoons-1"  # the first free name of the same series


def test_many_events_make_one_figure_update(project):
    # A pump that never ticks again after the first one: wait() drains everything at once.
    panel = TrainingPanel(project, hyperparameters=TINY, interval=30)
    messages = []

    def count(change):
        if change["new"] is not None:
            messages.append(change["name"])

    panel.figure.observe(count, names=["_py2js_update", "_py2js_restyle", "_py2js_relayout"])
    panel.run()
    _wait_for(lambda: not panel.trainer.running, timeout=120)
    pending = panel.trainer.events.qsize()
    messages.clear()
    panel.wait()
    assert pending >= 5  # steps, epoch, checkpoint, evaluation, the end
    assert len(messages) == 1, messages
    assert panel.state == "finished"


def test_stop_keeps_the_last_epoch_and_says_so(project):
    panel = TrainingPanel(project, hyperparameters={**TINY, "epochs": 40}, interval=0.1)
    panel.run()
    _wait_for(lambda: panel.history.epochs_done >= 1, timeout=120)
    panel.stop_button.click()
    assert panel.state == "stopping"
    assert panel.stop_button.disabled
    assert panel.run_button.disabled
    event = panel.wait(timeout=120)
    assert panel.state == "stopped"
    assert event.status == "stopped"
    assert event.epoch >= 1
    assert f"stopped: kept epoch {event.epoch}" in panel.message.value
    card = ModelRegistry(project).card("model-1")
    assert card.status == "stopped"
    assert (project.models_dir / "model-1" / WEIGHTS_FILE).is_file()
    assert not panel.run_button.disabled


def test_a_failed_run_shows_its_reason(project):
    broken = project.images(folder="train")[0]
    project.image_path(broken).write_bytes(b"\xff\xd8 not a jpeg any more")
    panel = TrainingPanel(project, hyperparameters=TINY, interval=0.1)
    assert panel.run() is not None  # the file exists: it fails when the thread decodes it
    panel.wait(timeout=120)
    assert panel.state == "failed"
    assert "failed:" in panel.message.value
    assert broken.path in panel.message.value
    assert not panel.run_button.disabled


def test_run_history_progress_and_padding():
    history = RunHistory(epochs=2)
    history.add(StepEvent(1, 1, 2, 1.0, {"a": 0.5}, 0.01, 4.0))
    history.add(StepEvent(1, 2, 2, 0.8, {"a": 0.4, "b": 0.1}, 0.01, 8.0))
    assert history.steps == [1, 2]
    assert history.parts["a"] == [0.5, 0.4]
    assert history.parts["b"][1] == 0.1
    assert history.fraction_done == 0.5
    assert history.progress_text().endswith("~0:08 left")
    history.add(EpochEvent(1, 2, 0.9, {}, 0.01, 8.0, 4, 8.0))
    assert history.epochs_done == 1
    history.add(FinishedEvent("finished", "done", "m", epoch=2))
    assert history.fraction_done == 1.0
    assert "left" not in history.progress_text()
    assert format_seconds(59.6) == "1:00"


def test_pump_reports_errors_instead_of_raising():
    errors = []

    def tick():
        raise RuntimeError("boom")

    pump = Pump(tick, interval=0.01, on_error=errors.append).start()
    assert pump.join(2.0)
    assert [str(e) for e in errors] == ["boom"]
    with pytest.raises(ValueError, match="interval"):
        Pump(tick, interval=0)


def test_unknown_task_and_folders_raise_at_construction(project):
    with pytest.raises(ValueError, match="task"):
        TrainingPanel(project, task="classification")
    with pytest.raises(ValueError, match="train_folders: no folder named nope"):
        TrainingPanel(project, train_folders=["nope"])


def test_a_model_that_finds_nothing_is_not_called_ready():
    usable, words = quality_verdict({"AP": 0.0004, "AP50": 0.001, "images": 6})
    assert not usable
    assert words == (
        "AP 0.00 on 6 test images: the model found nothing yet; train longer or check the labels"
    )
    assert quality_verdict({"AP": 0.27, "AP50": 0.83, "images": 1}) == (
        True,
        "AP 0.27 (AP50 0.83) on 1 test image",
    )
    assert quality_verdict({}) == (True, "")  # never evaluated: nothing to say


def test_the_figure_a_new_view_gets_is_the_current_one(project):
    """A reload or second view asks the kernel for the figure's state: it must hold the
    curves drawn so far and the axes, not the empty figure of construction time."""
    panel = TrainingPanel(project)
    history = RunHistory(epochs=2)
    for step in (1, 2):
        history.add(StepEvent(1, step, 2, 0.9 / step, {"loss_box_reg": 0.3}, 0.02, 1.0))
    panel.history = history
    panel._update_figure()
    state = panel.figure.get_state()
    loss = next(t for t in state["_widget_data"] if t["name"] == "loss")
    assert list(loss["y"]) == [0.9, 0.45]
    assert "markers" in loss["mode"]  # the first point shows before there is a line
    layout = state["_widget_layout"]
    assert layout["xaxis"]["title"]["text"] == "step"
    assert layout["yaxis2"]["range"] == [0, 1]


def test_offline_lists_download_models_last_with_the_reason(project, monkeypatch):
    monkeypatch.setenv("ANNOWIDGET_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(project.root / "empty-hub"))
    panel = TrainingPanel(project)
    labels = [label for label, _ in panel.base_model.options]
    unavailable = [label for label in labels if "✗ offline" in label]
    assert unavailable, labels
    assert labels[-len(unavailable) :] == unavailable  # what works here comes first
    panel.base_model.value = "fasterrcnn_resnet50_fpn_v2"
    assert "not available offline" in panel.base_model_help.value
    panel.pretrained.value = False
    assert "random weights" in panel.base_model_help.value


def test_with_several_gpus_a_run_goes_through_torchrun_and_plots_live(project, monkeypatch):
    # Two "visible GPUs" make the field appear; the run itself stays on the CPU (gloo), so
    # the panel's subprocess path is exercised for real without a GPU.
    import annowidget.widgets.training_panel as training_panel
    from annowidget.train.launch import DistributedTraining

    assert TrainingPanel(project).gpus is None or training_panel.visible_gpus() > 1
    monkeypatch.setattr(training_panel, "visible_gpus", lambda: 2)
    hp = {**TINY, "image_size": 128, "device": "cpu", "workers": 0, "epochs": 2}
    panel = TrainingPanel(
        project, base_model="ssdlite320_mobilenet_v3_large", pretrained=False,
        hyperparameters=hp, interval=0.1,
    )  # fmt: skip
    assert panel.gpus is not None
    assert panel.gpus.value == 2
    trainer = panel.run()
    assert isinstance(trainer, DistributedTraining), panel.message.value
    _wait_for(lambda: panel.history.epochs_done >= 1, timeout=300)  # plotted while it runs
    assert panel.state == "running"
    event = panel.wait(timeout=300)
    assert isinstance(event, FinishedEvent), panel.message.value
    assert event.status == "finished"
    assert panel.state == "finished"
    traces = {trace.name: trace for trace in panel.figure.data}
    assert len(traces["loss"].y) == 2  # 4 images, 2 ranks, batch 2: one step per epoch
    assert list(traces["AP"].x) == [2]  # evaluated at the end (eval_period 12)
    assert ModelRegistry(project).card("model-1").status == "finished"


def test_the_form_learning_rate_follows_the_batch_size_until_one_is_typed(project):
    """Issue 11 item 2: 0.02 at batch 16, scaled linearly, unless the user typed a rate."""
    panel = TrainingPanel(project)
    rate, batch = panel.form.inputs["learning_rate"], panel.form.inputs["batch_size"]
    assert rate.value == 0.005
    batch.value = 16
    assert rate.value == 0.02
    rate.value = 0.03
    batch.value = 8
    assert rate.value == 0.03
    assert panel.form.read().learning_rate == 0.03
