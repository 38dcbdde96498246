"""The documentation site (docs/, built by ``./run docs``) builds without warnings, every
code example in it runs, its configuration reference matches the defaults, and the
release workflow stays in step with ``./run wheels``.
"""

import re
import subprocess
import sys

import pytest
from support import PYTHONS, ROOT, subprocess_env

from peng3dnet.constants import DEFAULT_CONFIG

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
RUN = (ROOT / "run").read_text()


def _run_python(python, args, timeout=60):
    result = subprocess.run(
        [str(python), *args], env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def test_the_site_builds_without_warnings(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-E",
            "-b",
            "html",
            str(DOCS),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    api = (tmp_path / "api.html").read_text()
    # autodoc found the classes (an import failure would leave the page empty)
    for name in ("peng3dnet.net.Server", "peng3dnet.net.Client", "peng3dnet.packet.SmartPacket"):
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"


def test_the_docs_have_examples():
    assert len(EXAMPLES) >= 9 and PAGES


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_runs(example):
    assert _run_python(PYTHONS["ours"], [str(example)]).strip(), f"{example.name} printed nothing"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_is_shown(example):
    shown = "".join(page.read_text() for page in PAGES)
    assert f"examples/{example.name}" in shown, f"no page includes docs/examples/{example.name}"


def test_the_first_example_runs_on_the_original_too():
    # "Nothing to change": the getting-started program is plain peng3dnet.
    assert "hello, player one" in _run_python(
        PYTHONS["reference"], [str(DOCS / "examples" / "quickstart.py")]
    )


def _python_blocks():
    for page in PAGES:
        for number, block in enumerate(re.findall(r"^```python\n(.*?)^```", page.read_text(), re.M | re.S)):
            yield pytest.param(block, id=f"{page.stem}-{number}")


@pytest.mark.parametrize("code", list(_python_blocks()))
def test_every_inline_python_block_runs(code):
    _run_python(PYTHONS["ours"], ["-c", code])


def _documented_options():
    text = (DOCS / "configuration.md").read_text()
    rows = re.findall(r"^\| `(net\.[\w.]+)` \| `([^`]+)` \|", text, re.M)
    options = {}
    for name, default in rows:
        assert name not in options, f"{name} is documented twice"
        options[name] = eval(default, {"__builtins__": {}})
    return options


def test_the_configuration_reference_lists_every_option_with_its_default():
    documented = _documented_options()
    assert sorted(set(DEFAULT_CONFIG) - set(documented)) == [], "options missing from docs/configuration.md"
    assert sorted(set(documented) - set(DEFAULT_CONFIG)) == [], "documented options that do not exist"
    wrong = {
        name: (value, DEFAULT_CONFIG[name])
        for name, value in documented.items()
        if value != DEFAULT_CONFIG[name]
    }
    assert wrong == {}, "documented default != DEFAULT_CONFIG (documented, actual)"


def test_the_release_workflow_matches_run_wheels():
    workflow = WORKFLOW.read_text()
    maturin = re.search(r"WHEEL_DEPS=\(maturin==([\d.]+)", RUN).group(1)
    assert f'MATURIN_VERSION: "{maturin}"' in workflow, "the workflow and ./run wheels pin different maturins"
    assert "--compatibility manylinux2014" in RUN and 'manylinux: "2014"' in workflow
    assert "musllinux_1_2" in workflow
    # Every built wheel and the sdist are checked by the same command as here.
    assert workflow.count("bash run check-dist") >= 3 and "cmd_check_dist()" in RUN
    for runner in ("ubuntu-24.04-arm", "windows-latest", "macos-15-intel", "macos-latest"):
        assert runner in workflow
    # Every CPython the package supports is built and tested.
    minimum = re.search(r'requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    versions = re.search(r'PYTHONS: "([\d. ]+)"', workflow).group(1).split()
    assert versions[0] == f"3.{minimum}"
    assert f"python: {[*versions]}".replace("'", '"') in workflow
