"""The LabelingApp's wiring without a browser: one project, four widgets, a shared current
image, a shared model list, and predictions that land in the Annotator."""

from __future__ import annotations

import pytest

import annowidget
import annowidget.widgets as aw
from annowidget.store import Project
from annowidget.train import Trainer
from annowidget.train.hyperparameters import Hyperparameters
from annowidget.widgets.app import TABS, LabelingApp

TINY = {"image_size": 64, "batch_size": 2, "num_threads": 1, "epochs": 1}


@pytest.fixture
def project(tmp_path) -> Project:
    project = annowidget.sample_project(tmp_path / "sample")
    spare = [i.id for i in project.images(folder="train")[4:]]
    spare += [i.id for i in project.images(folder="test")[2:]]
    project.move_images(spare, "spare")
    return project


def _click_tile(app: LabelingApp, slot: int) -> None:
    x, y = app.gallery.geometry.origin(slot)
    app.gallery.canvas._handle_frontend_event(
        None, {"event": "mouse_down", "x": x + 5, "y": y + 5}, []
    )


def test_one_line_builds_the_widgets_over_one_project(project):
    app = LabelingApp(project.root)  # a path works too
    assert [app.tabs.get_title(i) for i in range(len(TABS))] == list(TABS)
    widgets = (app.annotator, app.gallery, app.training, app.predict, app.effort)
    assert app.tabs.children == widgets
    for widget in widgets:
        assert widget.project.root == project.root
    assert "40 images" in app.summary.value
    assert "10 unlabeled" in app.summary.value
    assert app.current_image is not None
    assert aw.LabelingApp is LabelingApp
    assert isinstance(app.annotator, aw.Annotator)
    with pytest.raises(AttributeError, match="Nope"):
        aw.Nope  # noqa: B018


def test_a_gallery_click_opens_the_image_in_the_annotator(project):
    app = LabelingApp(project)
    app.show("Review")
    target = app.gallery.page_images[3]
    _click_tile(app, 3)
    assert app.current_image.id == target.id
    assert app.tabs.selected_index == TABS.index("Label")
    with pytest.raises(ValueError, match="tab"):
        app.show("Settings")


def test_selected_images_are_the_gallery_selection_or_the_open_image(project):
    app = LabelingApp(project)
    app.annotator.goto(project.images(folder="unlabeled")[0])
    assert app.selected_image_ids() == [app.current_image.id]
    app.gallery.select_mode.value = True
    _click_tile(app, 0)
    _click_tile(app, 1)
    assert app.selected_image_ids() == [image.id for image in app.gallery.page_images[:2]]


def test_predictions_show_in_the_annotator_and_the_gallery(project):
    Trainer(project, "m1", hyperparameters=Hyperparameters(**TINY)).run()
    app = LabelingApp(project, interval=0.05)
    app.annotator.goto(project.images(folder="train")[0])  # a reviewed image: no predictions
    app.show("Predict")
    assert app.predict.model.value == "m1"
    app.predict.scope.value = "all unlabeled"
    app.predict.threshold.value = 0.0
    app.predict.run()
    report = app.predict.wait(timeout=120)
    assert report.predictions > 0
    assert app.tabs.selected_index == TABS.index("Label")
    assert app.current_image.folder == "unlabeled"
    assert app.annotator.predictions, "the Annotator must show the new predictions"
    assert app.annotator.threshold == 0.0  # shown down to the run's threshold
    assert app.gallery.threshold == 0.0
    assert "10 to check" in app.summary.value
    assert app.gallery.sort_by.value == "status"
    assert project.image(app.gallery.image_ids[0]).status == "predicted"


def test_edits_refresh_the_gallery_when_its_tab_is_shown(project):
    Trainer(project, "m1", hyperparameters=Hyperparameters(**TINY)).run()
    image = project.images(folder="unlabeled")[0]
    app = LabelingApp(project, interval=0.05)
    app.annotator.goto(image)
    app.predict.scope.value = "selected images"
    app.predict.threshold.value = 0.0
    app.predict.run()
    app.predict.wait(timeout=120)
    assert app.annotator.predictions
    drawn = app.gallery.batches_sent
    assert "1 predicted, 30 reviewed" in app.gallery.status.value
    accepted = app.annotator.accept_all(0.0)  # a person accepts every box: reviewed
    assert accepted > 0
    assert project.image(image.id).status == "reviewed"
    assert app.gallery.batches_sent == drawn  # no redraw per edit
    app.show("Review")
    assert app.gallery.batches_sent == drawn + 1
    assert "31 reviewed" in app.gallery.status.value
    assert "predicted" not in app.gallery.status.value


def test_a_finished_run_reaches_the_prediction_list_through_the_app(project):
    app = LabelingApp(project, hyperparameters=TINY, interval=0.05)
    app.training.run()
    app.training.wait(timeout=120)
    assert app.predict.model.value == "model-1"
    assert app._links  # the header progress is linked in the browser, not by the kernel


def test_a_missing_widget_module_says_so(monkeypatch):
    monkeypatch.setitem(aw._EXPORTS, "Ghost", "annowidget.widgets.ghost")
    with pytest.raises(ImportError, match=r"annowidget\.widgets\.Ghost is not available"):
        aw.Ghost  # noqa: B018


def test_the_effort_tab_counts_the_edits_made_in_the_annotator(project):
    app = LabelingApp(project)

    def drawn() -> int:
        return sum(r.drawn_from_scratch for r in app.effort.rounds if r.model is None)

    before = drawn()
    image = project.images(folder="unlabeled")[0]
    app.annotator.goto(image)
    project.add_annotation(image.id, project.category("raccoon").id, [10, 10, 50, 50])
    app.show("Review")
    assert drawn() == before  # the log is read when the Effort tab is shown, not per edit
    app.show("Effort")
    assert drawn() == before + 1


def test_when_nothing_was_predicted_the_predict_tab_stays_and_says_so(project):
    Trainer(project, "m1", hyperparameters=Hyperparameters(**TINY)).run()
    app = LabelingApp(project, interval=0.05)
    shown = app.current_image
    app.show("Predict")
    app.predict.scope.value = "all unlabeled"
    app.predict.threshold.value = 1.0  # no box scores above 1: nothing is stored
    app.predict.run()
    report = app.predict.wait(timeout=120)
    assert report.predictions == 0
    assert app.tabs.selected_index == TABS.index("Predict")
    assert "0 boxes on 10 images" in app.predict.message.value
    assert "nothing to check" in app.predict.message.value
    assert app.current_image.id == shown.id


def test_the_header_follows_every_edit_without_a_tab_switch(project):
    app = LabelingApp(project)
    image = project.images(folder="unlabeled")[0]
    app.annotator.goto(image)
    assert "10 unlabeled" in app.summary.value
    app.annotator._handle_custom_msg(
        {"type": "add", "category_id": 1, "bbox": [5, 5, 30, 30], "seq": 1}, []
    )
    assert "9 unlabeled" in app.summary.value
    assert app.tabs.selected_index == TABS.index("Label")


def test_a_class_added_anywhere_reaches_every_tab(project):
    app = LabelingApp(project)
    app.annotator.add_category("raccoon kit")
    kit = project.categories()[-1]
    assert kit.name == "raccoon kit"
    assert kit.id in app.gallery._colors


def test_the_annotator_field_signs_the_next_edits(project, monkeypatch):
    monkeypatch.setenv("ANNOWIDGET_USER", "sam")
    app = LabelingApp(project.root)  # opened here: the store's default name
    mine = app.project
    assert mine.user == app.user_field.name.value == "sam"
    image = mine.images(folder="unlabeled")[0]
    app.annotator.goto(image)
    assert mine.lease_holder(image.id) == "sam"

    app.user_field.name.value = "  ana "  # typed into the header
    assert mine.user == app.user_field.name.value == "ana"
    assert mine.lease_holder(image.id) == "ana"  # the open image moves with the name
    app.annotator._handle_custom_msg(
        {"type": "add", "category_id": 1, "bbox": [5, 5, 30, 30], "seq": 1}, []
    )
    app.user_field.name.value = "ben"
    app.annotator._handle_custom_msg(
        {"type": "add", "category_id": 1, "bbox": [50, 5, 30, 30], "seq": 2}, []
    )
    adds = [a.author for a in mine.actions(image_id=image.id) if a.action == "add"]
    assert adds == ["ana", "ben"]

    app.user_field.name.value = "   "  # refused: the name in force stays, and says why
    assert mine.user == app.user_field.name.value == "ben"
    assert "must not be blank" in app.user_field.message.value
    app.user_field.name.value = "cat"
    assert app.user_field.message.value == ""
    assert mine.user == "cat"
