"""The conda environment and pyproject.toml name the same dependencies."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO


def test_environment_yml_names_the_pyproject_dependencies() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    text = (REPO / "environment.yml").read_text()
    listed = re.findall(r'^\s+- "([^"]+)"$', text, flags=re.M)
    assert sorted(d for d in listed if not d.startswith("-e")) == sorted(declared)
    assert '- "-e .[test]"' in text
