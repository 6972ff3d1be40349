"""The README as the tests read it: the commands of a section, the configuration block."""

from __future__ import annotations

import re

import json5

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands(section: str) -> list[str]:
    """The commands of the ```sh blocks in the README section `## SECTION`, each on one
    line (a line ending with a backslash is joined to the next)."""
    text = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]


def readme_command(section: str, *words: str) -> str:
    """The one command of the section that holds every word."""
    (command,) = [line for line in readme_commands(section) if all(w in line for w in words)]
    return command


def readme_pins() -> dict:
    """`gpio.pins` of the README's configuration block."""
    text = README.split("\n## Configuration: `web.json5`\n", 1)[1]
    block = re.search(r"```json5\n(.*?)```", text, re.S).group(1)
    return json5.loads(block)["gpio"]["pins"]
