"""The data files shipped inside the package (``seqgan_env/datasets/``), found with importlib.resources.

They are package data (setup.cfg ``[options.package_data]``), so a wheel or sdist install carries them
next to the code. :func:`datasets_dir` is a real file-system folder: the package's own when it is
installed as files (the usual case, editable installs included), or, when it is imported from a zip
archive, a temporary copy made once per process (same file names) and removed at exit.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path

#: The folder inside the ``seqgan_env`` package that holds the shipped data files and their README.
DATASETS = "datasets"


def dataset_resource(name: str = ""):
    """The importlib.resources Traversable of a shipped data file (``""``: the folder itself)."""
    folder = resources.files("seqgan_env") / DATASETS
    return folder / name if name else folder


@cache
def datasets_dir() -> Path:
    """File-system path of the folder of shipped data files."""
    folder = dataset_resource()
    if isinstance(folder, Path):
        return folder.resolve()
    copy = Path(tempfile.mkdtemp(prefix="seqgan_env-datasets-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    for item in folder.iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    return copy


def dataset_path(name: str) -> Path:
    """File-system path of the shipped data file ``name`` (e.g. ``"census_first_names.txt"``)."""
    return datasets_dir() / name
