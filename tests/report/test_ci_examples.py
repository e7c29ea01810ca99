"""The CI examples people copy: valid YAML, and every fridgebench option they use exists."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.helpers import cli

CI = Path(__file__).parents[2] / "examples" / "ci"


def _commands(node: object) -> list[str]:
    if isinstance(node, dict):
        return [c for v in node.values() for c in _commands(v)]
    if isinstance(node, list):
        return [c for v in node for c in _commands(v)]
    if isinstance(node, str) and "fridgebench " in node:
        text = node.replace("\\\n", " ")
        return [m.group(0) for m in re.finditer(r"fridgebench (compare|gate|report)[^\n;&|>]*", text)]
    return []


def test_ci_examples_parse_and_use_real_options() -> None:
    files = sorted(CI.glob("*.yml"))
    assert {f.name for f in files} >= {"github-actions.yml", "gitlab-ci.yml"}
    helps: dict[str, str] = {}
    used = 0
    for f in files:
        doc = yaml.safe_load(f.read_text())
        for cmd in _commands(doc):
            sub = cmd.split()[1]
            if sub not in helps:
                res = cli(sub, "--help", env={"COLUMNS": "300"})
                assert res.returncode == 0, res.stderr
                helps[sub] = res.stdout
            for flag in re.findall(r"(--[a-z][a-z-]+)", cmd):
                assert flag in helps[sub], f"{f.name}: fridgebench {sub} has no {flag}"
                used += 1
    assert used >= 10
    gh = yaml.safe_load((CI / "github-actions.yml").read_text())
    steps = [s.get("name", s.get("uses", "")) for s in gh["jobs"]["fridgebench"]["steps"]]
    assert any("baseline" in s.lower() for s in steps) and any("upload-artifact" in str(s) or "report" in s.lower()
                                                              for s in steps)
