"""What must not import torch (seconds): the widgets' import, building the LabelingApp on a
project, and listing its models (issue 14, item 12). Torch loads on Run or Predict.

Each check runs in a fresh interpreter: this test process has torch loaded already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_LOADED = (
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
    "print('LOADED', loaded)\n"
)


def _loaded_after(script: str) -> str:
    code = "import sys\n" + textwrap.dedent(script) + _LOADED
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_importing_the_widgets_and_the_package_does_not_import_torch() -> None:
    script = """
        import annowidget
        import annowidget.widgets
        from annowidget.widgets import LabelingApp
        from annowidget.widgets.predict_panel import PredictPanel
        from annowidget.widgets.training_panel import TrainingPanel
        assert annowidget.LabelingApp is LabelingApp
    """
    assert _loaded_after(script) == "LOADED []"


def test_building_the_labeling_app_and_listing_models_do_not_import_torch(
    tmp_path: Path,
) -> None:
    script = f"""
        import annowidget
        from annowidget.cli import main
        from annowidget.models import BASE_MODELS, ModelRegistry, default_base_model
        from annowidget.widgets import LabelingApp
        project = annowidget.sample_project({str(tmp_path / "sample")!r})
        app = LabelingApp(project)
        assert app.predict.model.options and app.training.base_model.options
        registry = ModelRegistry(project)
        assert registry.names("detection")
        assert default_base_model("detection") in BASE_MODELS
        registry.lineage("fasterrcnn_mobilenet_v2_fpn")
        assert main(["models", {str(tmp_path / "sample")!r}]) == 0
    """
    assert _loaded_after(script) == "LOADED []"
