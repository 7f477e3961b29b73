"""The documentation site builds with ``mkdocs build --strict`` and renders the API from the docstrings.

Skipped when MkDocs is not installed (``pip install -e '.[docs]'`` or ``make docs`` installs it). The build
runs the CLI help generator (docs/hooks/gen_cli.py) and mkdocstrings (which reads the source with griffe,
importing nothing): about 15 s on a shared 2-core CPU.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MISSING = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python") if importlib.util.find_spec(m.split(".")[0]) is None]

pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"the docs need {', '.join(MISSING)}: pip install -e '.[docs]' (or make docs)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def test_home_page_renders(site):
    html = (site / "index.html").read_text()
    assert "seqgan-env" in html and "SeqGAN-v1" in html
    assert 'href="getting-started/"' in html


def test_env_page_shows_the_rendered_make_env_signature(site):
    html = (site / "environment" / "index.html").read_text()
    assert 'id="seqgan_env.rewards.registration.make_env"' in html  # mkdocstrings' heading of the function
    assert "share_discriminator" in html and "update_until_accuracy" in html
    assert "SeqGAN-v0" in html  # the versions table


def test_api_page_renders_the_docstrings(site):
    html = (site / "api" / "registration" / "index.html").read_text()
    assert 'id="seqgan_env.rewards.registration.make_env"' in html
    assert "share_discriminator" in html
    assert "DataError" in html  # the Raises section, parsed from the Google-style docstring
    assert 'id="seqgan_env.testing.check_env"' in (site / "api" / "testing" / "index.html").read_text()


def _section_table(html: str, anchor: str, section: str) -> str:
    """The first ``section`` table ("Parameters", "Attributes") after the heading ``id=anchor``."""
    start = html.index(f'id="{anchor}"')
    at = html.index(f'doc-section-title">{section}:', start)
    return html[at:html.index("</table>", at)]


def test_api_pages_show_parameter_and_attribute_tables(site):
    """Google-style Args / Attributes render as tables of name, type and description (not prose)."""
    registration = (site / "api" / "registration" / "index.html").read_text()
    table = _section_table(registration, "seqgan_env.rewards.registration.make_env", "Parameters")
    for name in ("data_path", "reward_mode", "share_discriminator"):
        assert f"<code>{name}</code>" in table
    assert "<th>Type</th>" in table and "<th>Default</th>" in table
    public = (site / "api" / "seqgan_env" / "index.html").read_text()
    table = _section_table(public, "seqgan_env.RewardConfig", "Attributes")
    for name in ("mode", "update_every", "sources"):
        assert f">{name}</span></code>" in table
    assert "<code>max_length</code>" in _section_table(public, "seqgan_env.TokenGenerationEnv", "Parameters")
    assert "<code>num_envs</code>" in _section_table(public, "seqgan_env.TokenGenerationVectorEnv", "Parameters")
    assert "<code>scorer</code>" in _section_table(public, "seqgan_env.DiscriminatorReward", "Parameters")
    callback = "seqgan_env.rewards.callbacks.DiscriminatorUpdateCallback"
    assert "<code>sample_fake</code>" in _section_table(public, callback, "Parameters")
    # its fields carry their own docstrings (tyro reads them for `seqgan-env train --help`): one entry each
    assert 'id="seqgan_env.rewards.callbacks.DiscriminatorUpdateConfig.until_accuracy"' in public


def test_cli_reference_is_generated_from_the_parser(site):
    html = (site / "cli" / "index.html").read_text()
    for command in ("train", "sample", "eval", "plot", "runs", "sweep"):
        assert f"seqgan-env {command}" in html
    assert "--temperature" in html
