"""Dataset formats: COCO JSON, Pascal VOC XML, YOLO txt, PNG label maps, and plain images.

Every import returns an :class:`ImportReport`; a bad item (a file, a JSON entry, a label
row) is skipped and named there while the rest of the dataset lands in the project.

Example:
    >>> from annowidget.formats import import_coco, export_yolo
    >>> # report = import_coco(project, "instances.json"); print(report.summary())
"""

from __future__ import annotations

from annowidget.formats._classes import load_classes
from annowidget.formats._common import IMAGE_EXTENSIONS, FormatError
from annowidget.formats._masks import check_segmentation
from annowidget.formats._report import ImportReport
from annowidget.formats.coco import export_coco, import_coco
from annowidget.formats.folder import import_images
from annowidget.formats.label_maps import export_label_maps, import_label_maps
from annowidget.formats.voc import export_voc, import_voc
from annowidget.formats.yolo import export_yolo, import_yolo

__all__ = [
    "IMAGE_EXTENSIONS",
    "FormatError",
    "ImportReport",
    "check_segmentation",
    "export_coco",
    "export_label_maps",
    "export_voc",
    "export_yolo",
    "import_coco",
    "import_images",
    "import_label_maps",
    "import_voc",
    "import_yolo",
    "load_classes",
]
