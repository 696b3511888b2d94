"""The data commands of the CLI: init, import, export, split, info, and their errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from annowidget_permissions import AS_A_USER
from PIL import Image as PILImage

from annowidget.cli import main
from annowidget.store import Project

DATA = Path(__file__).parents[1].parent / "shared" / "data"
RACCOON = DATA / "raccoon"
pytestmark = pytest.mark.skipif(
    not (RACCOON / "annotations").is_dir(), reason=f"raccoon not found at {RACCOON}"
)


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_init_import_split_info_and_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "raccoons"
    code, out, _ = run(capsys, "init", project, "--images", RACCOON)
    assert code == 0
    assert f"created project {project}" in out

    code, out, err = run(
        capsys,
        "import",
        project,
        RACCOON / "annotations",
        "--format",
        "voc",
        "--images",
        RACCOON / "images",
    )
    assert code == 0
    assert out.splitlines()[0] == (
        "200 images added, 0 already in the project, 217 annotations added, 1 categories added"
    )
    assert "probing images" in err  # the progress bar goes to stderr, not into the summary

    code, out, _ = run(capsys, "split", project, "--ratio", "0.8", "--seed", "1")
    assert (code, out) == (0, "train: 160 images, test: 40 images (seed 1)\n")

    code, out, _ = run(capsys, "info", project, "--json")
    info = json.loads(out)
    assert info["folders"] == {"test": 40, "train": 160}
    assert info["status"]["reviewed"] == 200
    assert info["categories"] == {"raccoon": {"annotations": 217, "predictions": 0}}
    code, out, _ = run(capsys, "info", project)
    assert "folders      test: 40, train: 160" in out
    assert "raccoon" in out

    coco = tmp_path / "test.json"
    code, out, _ = run(
        capsys,
        "export",
        project,
        coco,
        "--format",
        "coco",
        "--folder",
        "test",
        "--status",
        "reviewed",
    )
    assert code == 0
    assert out.startswith("exported 40 images, ")
    assert len(json.loads(coco.read_text())["images"]) == 40
    code, out, _ = run(capsys, "export", project, tmp_path / "voc", "--format", "voc")
    assert len(list((tmp_path / "voc" / "images").glob("*.xml"))) == 200
    code, out, _ = run(capsys, "export", project, tmp_path / "yolo", "--format", "yolo")
    assert (tmp_path / "yolo" / "classes.txt").read_text() == "raccoon\n"
    assert out == f"exported 200 images, 217 annotations, 1 classes to {tmp_path / 'yolo'}\n"


def test_import_lists_the_first_20_skipped_items_then_a_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    shutil.copy(RACCOON / "images" / "raccoon-1.jpg", images)
    rows = ["0 0.5 0.5 0.2 0.2"] + ["0 0.5 0.5"] * 25
    (labels / "raccoon-1.txt").write_text("\n".join(rows) + "\n")
    (labels / "classes.txt").write_text("raccoon\n")  # found without --classes
    run(capsys, "init", tmp_path / "p", "--images", images)
    code, out, _ = run(
        capsys, "import", tmp_path / "p", labels, "--format", "yolo", "--images", images
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("1 images added, 0 already in the project, 1 annotations added")
    assert lines[1] == "25 items skipped:"
    assert lines[2].startswith("  raccoon-1.txt:2: 3 values; expected 5")
    assert lines[21].startswith("  raccoon-1.txt:21: ")
    assert lines[22] == "  ... and 5 more"


def test_plain_images_import_goes_to_unlabeled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for n in (1, 2):
        shutil.copy(RACCOON / "images" / f"raccoon-{n}.jpg", images)
    run(capsys, "init", tmp_path / "p", "--images", images)
    code, out, _ = run(capsys, "import", tmp_path / "p", images, "--format", "images")
    assert code == 0
    assert out.startswith("2 images added")
    code, out, _ = run(capsys, "info", tmp_path / "p", "--json")
    assert json.loads(out)["folders"] == {"unlabeled": 2}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "{tmp}/missing"], "annowidget info: error: {tmp}/missing: not an annowidget"),
        (["init", "{tmp}/p", "--images", "{tmp}/p"], "annowidget init: error: {tmp}/p: a project"),
        (
            ["import", "{tmp}/p", "{tmp}", "--format", "yolo"],
            "annowidget import: error: --images DIR is required with --format yolo",
        ),
        (
            ["import", "{tmp}/p", "{tmp}", "--format", "yolo", "--images", "{tmp}"],
            "annowidget import: error: {tmp}: no classes.txt beside the labels",
        ),
        (
            ["import", "{tmp}/p", "{tmp}/broken.json", "--format", "coco"],
            "annowidget import: error: {tmp}/broken.json: not valid JSON: Expecting value "
            "(line 1, column 12)",
        ),
        (["split", "{tmp}/p", "--ratio", "1.5"], "annowidget split: error: ratio must be"),
        (["split", "{tmp}/p"], "annowidget split: error: no reviewed images to split"),
    ],
)
def test_errors_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "broken.json").write_text('{"images": ]}')
    assert main(["init", str(tmp_path / "p"), "--images", str(tmp_path)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(message.format(tmp=tmp_path))


def _command() -> list[str]:
    script = Path(sys.executable).parent / "annowidget"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "annowidget.cli"]


def test_the_installed_command_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    created = subprocess.run(
        [*_command(), "init", str(tmp_path / "p"), "--images", str(tmp_path / "images")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    (tmp_path / "bad.json").write_text('{"images": [], "categories": [}')
    failed = subprocess.run(
        [
            *_command(),
            "import",
            str(tmp_path / "p"),
            str(tmp_path / "bad.json"),
            "--format",
            "coco",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.splitlines() == [
        f"annowidget import: error: {tmp_path / 'bad.json'}: not valid JSON: "
        "Expecting value (line 1, column 31)"
    ]


def test_info_and_the_parser_do_not_import_torch(tmp_path: Path) -> None:
    # torch takes seconds to import: the data commands must not pay for it (issue 14, 12).
    (tmp_path / "images").mkdir()
    assert main(["init", str(tmp_path / "p"), "--images", str(tmp_path / "images")]) == 0
    script = (
        "import sys\n"
        "from annowidget.cli import build_parser, main\n"
        "build_parser()\n"
        f"code = main(['info', {str(tmp_path / 'p')!r}])\n"
        "from annowidget.models.card import ModelCard\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
        "print('LOADED', loaded, code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED [] 0" in result.stdout


def _damage(db: Path, how: str) -> None:
    if how == "text":
        db.write_text("these are my notes, not a database\n")
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "overwritten":
        with db.open("r+b") as handle:
            handle.write(bytes(range(256)) * 8)
    else:  # truncated: the header survives, the pages it points to do not
        with db.open("r+b") as handle:
            handle.truncate(3000)


@pytest.mark.parametrize("how", ["text", "empty", "overwritten", "truncated"])
def test_a_damaged_project_database_is_one_line_not_a_traceback(tmp_path: Path, how: str) -> None:
    (tmp_path / "images").mkdir()
    project = tmp_path / "p"
    Project.create(project, images_root=tmp_path / "images").close()
    for leftover in project.glob("project.sqlite-*"):
        leftover.unlink()
    _damage(project / "project.sqlite", how)
    result = subprocess.run(
        [*_command(), "info", str(project)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"annowidget info: error: {project}")


def test_a_read_only_project_folder_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    project = tmp_path / "p"
    Project.create(project, images_root=tmp_path / "images").close()
    project.chmod(0o555)
    try:
        result = subprocess.run(
            [
                *AS_A_USER,
                *_command(),
                "import",
                str(project),
                str(tmp_path / "images"),
                "--format",
                "images",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        project.chmod(0o755)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0 or len(result.stderr.splitlines()) == 1, result.stderr


def test_two_concurrent_imports_end_in_one_line_each_at_most(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for index in range(40):
        PILImage.new("RGB", (8, 8), (index, 0, 0)).save(images / f"{index:03d}.png")
    project = tmp_path / "p"
    Project.create(project, images_root=images).close()
    command = [*_command(), "import", str(project), str(images), "--format", "images"]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]  # type: ignore[union-attr]
    for code, err in results:
        assert "Traceback" not in err
        assert code in (0, 1)
        if code:
            assert len(err.splitlines()) == 1, err
    with Project.open(project) as opened:
        assert len(opened.images()) == 40  # every image once, whichever import won


def test_an_import_that_imports_nothing_exits_1(tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    (images / "empty").mkdir(parents=True)
    assert main(["init", str(tmp_path / "p"), "--images", str(images)]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "import", tmp_path / "p", images / "empty", "--format", "images")
    assert code == 1
    assert err == f"annowidget import: error: {images / 'empty'}: nothing imported\n"
    # a VOC import whose every file is skipped is a failure too, not "0 images, exit 0"
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "a.xml").write_text(
        "<annotation><filename>missing.jpg</filename></annotation>"
    )
    code, out, err = run(
        capsys, "import", tmp_path / "p", tmp_path / "voc", "--format", "voc", "--images", images,
        "--no-progress",
    )  # fmt: skip
    assert code == 1, out
    assert err.startswith(f"annowidget import: error: {tmp_path / 'voc'}: nothing imported (")


def test_a_folder_that_names_nothing_is_refused(tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    images.mkdir()
    assert main(["init", str(tmp_path / "p"), "--images", str(images)]) == 0
    capsys.readouterr()
    code, _, err = run(
        capsys, "export", tmp_path / "p", tmp_path / "out.json", "--format", "coco",
        "--folder", "tset",
    )  # fmt: skip
    assert code == 1
    assert err.startswith("annowidget export: error: --folder tset: no such folder")
    assert not (tmp_path / "out.json").exists()


def test_relocate_points_the_project_at_its_moved_images(tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        PILImage.new("RGB", (8, 8), (index, 0, 0)).save(images / f"{index}.png")
    project = tmp_path / "p"
    assert main(["init", str(project), "--images", str(images)]) == 0
    assert main(["import", str(project), str(images), "--format", "images", "--no-progress"]) == 0
    moved = tmp_path / "moved"
    images.rename(moved)
    (tmp_path / "elsewhere").mkdir()
    capsys.readouterr()

    code, out, err = run(capsys, "relocate", project, "--images", tmp_path / "elsewhere")
    assert (code, out) == (1, "")
    assert err == (
        f"annowidget relocate: error: {tmp_path / 'elsewhere'}: none of the project's 3 images "
        "are there\n"
    )
    code, out, err = run(capsys, "relocate", project, "--images", moved)
    assert (code, err) == (0, "")
    assert out == f"images root: {moved} (3 of 3 images found there)\n"
    with Project.open(project) as opened:  # stored, not only in this process
        assert opened.images_root == moved
        assert all(opened.image_path(image).is_file() for image in opened.images())
