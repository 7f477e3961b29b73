"""The package as a distribution, checked cheaply from the source: its data is package data found with
importlib.resources, the version is written once, py.typed and the licences ship. The built wheel
itself is checked end to end by `make wheel-check` (.ci/wheel_check.sh), which CI runs."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import importlib.resources
from pathlib import Path

import seqgan_env
from seqgan_env.data.text import (
    COCO_TEST_PATH,
    COCO_TRAIN_PATH,
    DEFAULT_DATA_DIR,
    DEFAULT_DATA_PATH,
    NAMED_DATA,
)
from seqgan_env.eval.oracle import DEFAULT_ORACLE_PATH
from seqgan_env.utils.resources import DATASETS, dataset_path, dataset_resource, datasets_dir

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "seqgan_env"
DATA_FILES = ("README.md", "census_first_names.txt", "census_last_names.txt", "coco_captions_train.txt",
              "coco_captions_test.txt", "seqgan_oracle_lstm.npz")


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.strip().splitlines() if line.strip()]


def test_data_files_found_through_importlib_resources():
    folder = importlib.resources.files("seqgan_env") / DATASETS
    shipped = sorted(item.name for item in folder.iterdir() if item.is_file())
    assert shipped == sorted(DATA_FILES)
    assert datasets_dir() == DEFAULT_DATA_DIR == (PKG / DATASETS).resolve()
    for path in (DEFAULT_DATA_PATH, COCO_TRAIN_PATH, COCO_TEST_PATH, DEFAULT_ORACLE_PATH):
        assert isinstance(path, Path) and path.is_file() and path.parent == DEFAULT_DATA_DIR
        assert path.read_bytes() == (folder / path.name).read_bytes() == dataset_resource(path.name).read_bytes()
        assert dataset_path(path.name) == path
    assert NAMED_DATA["coco"] == (COCO_TRAIN_PATH, COCO_TEST_PATH)
    assert not (ROOT / "data").exists()  # the old folder beside the package is gone: one copy of the data


def test_package_data_covers_the_data_files_and_py_typed():
    cfg = _setup_cfg()
    patterns = _lines(cfg["options.package_data"]["seqgan_env"])
    shipped = [p.relative_to(PKG).as_posix() for p in sorted((PKG / DATASETS).iterdir()) if p.is_file()]
    assert shipped, "no data files found"
    for rel in [*shipped, "py.typed"]:
        assert any(fnmatch.fnmatchcase(rel, pat) for pat in patterns), f"{rel} is not package data in setup.cfg"
    assert "seqgan_env" in _lines(cfg["options"]["packages"])
    assert not (PKG / DATASETS / "__init__.py").exists()  # data, not a subpackage


def test_version_defined_once():
    cfg = _setup_cfg()
    assert cfg["metadata"]["version"].strip() == "attr: seqgan_env.__version__"
    # setuptools reads it without importing the package (no torch at build time): a literal assignment
    tree = ast.parse((PKG / "__init__.py").read_text(encoding="utf-8"))
    literal = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
               and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
               and isinstance(node.value, ast.Constant)]
    assert literal == [seqgan_env.__version__] and seqgan_env.__version__.count(".") >= 2
    written = [p for p in (*PKG.rglob("*.py"), ROOT / "setup.cfg", ROOT / "pyproject.toml")
               if p.name != "__init__.py" or p.parent != PKG
               if f'"{seqgan_env.__version__}"' in p.read_text(encoding="utf-8")
               or f"version = {seqgan_env.__version__}" in p.read_text(encoding="utf-8")]
    assert written == [], f"the version is written again in {written}"


def test_py_typed_license_and_license_files():
    assert (PKG / "py.typed").is_file()
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 the seqgan-env developers" in text
    license_files = _lines(_setup_cfg()["metadata"]["license_files"])
    assert "LICENSE" in license_files and "seqgan_env/datasets/README.md" in license_files
    for rel in license_files:
        assert (ROOT / rel).is_file(), rel
    readme = (PKG / DATASETS / "README.md").read_text(encoding="utf-8")
    for name in DATA_FILES[1:]:
        assert f"`{name}`" in readme, f"the data README does not say whose {name} is"
    assert "Creative Commons Attribution 4.0" in readme and "public domain" in readme
