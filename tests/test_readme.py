"""Every command line the README shows still works as written.

Shell blocks are read from the README: a ``./run COMMAND`` must be a command of the
project script (and ``./run bench``'s options options of the suite), a ``peng3dnet ...``
line must parse with the command-line tool's own parser (placeholders such as
``HOST:PORT`` filled in), so that a renamed command or flag fails here. The commands
themselves run elsewhere: the test command runs the demo, the fuzz targets, the
benchmark suite and the soak in short forms (``./run smoke``), the CLI tests run the
tool.
"""

import re
import shlex
import subprocess

import pytest
from support import ROOT

from peng3dnet import cli

README = (ROOT / "README.md").read_text()


def _shell_lines():
    lines, inside = [], False
    for line in README.splitlines():
        if line.startswith("```"):
            inside = line.strip() in ("```sh", "```bash", "```console") if not inside else False
            continue
        if inside:
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


LINES = _shell_lines()
RUN_COMMANDS = [line for line in LINES if line.startswith("./run ")]
CLI_COMMANDS = [line for line in LINES if line.startswith("peng3dnet ")]


def test_the_readme_shows_commands():
    # The parse below found the blocks (a README without them would pass the rest).
    assert "./run test" in RUN_COMMANDS and "./run demo" in RUN_COMMANDS
    assert any(line.startswith("peng3dnet ping") for line in CLI_COMMANDS)


@pytest.fixture(scope="module")
def run_commands():
    help_text = subprocess.run(
        [str(ROOT / "run"), "help"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return {line.split()[0] for line in help_text.splitlines() if line.strip()}


@pytest.mark.parametrize("line", RUN_COMMANDS)
def test_run_commands_exist(line, run_commands):
    words = shlex.split(line)
    assert words[1] in run_commands, f"{line!r}: ./run has no command {words[1]!r}"
    if words[1] == "bench":
        # Options of ./run bench go to the suite; [--quick] means the option is optional.
        suite_help = subprocess.run(
            ["python3", str(ROOT / "benches" / "suite" / "run.py"), "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        for option in re.findall(r"--[a-z-]+", line):
            assert option in suite_help, f"{line!r}: the suite has no option {option}"


def _filled(line):
    # Placeholders and example file names as the README writes them.
    return line.replace("HOST:PORT", "127.0.0.1:8080")


@pytest.mark.parametrize("line", CLI_COMMANDS)
def test_cli_lines_parse(line):
    args = shlex.split(_filled(line))[1:]
    try:
        parsed = cli._parser().parse_args(args)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{line!r} no longer parses (exit {exc.code})")
    assert parsed.command == args[0]
