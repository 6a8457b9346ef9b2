"""pyproject.toml gives TensorFlow ranges, not pins; both ends are what is tested.

The highest: requirements.txt's exact pins, which `make test` installs. The lowest: .ci/lowest-constraints.txt,
which .ci/install-lowest installs into a fresh venv with `pip install .` before embedding a sentence.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
RANGED = ("tensorflow", "tensorflow-text", "tf-keras")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[name.strip().lower()] = version.strip()
    return found


def test_tensorflow_is_a_range_whose_ends_are_the_tested_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    highest, lowest = pins(ROOT / "requirements.txt"), pins(ROOT / ".ci" / "lowest-constraints.txt")
    for name in RANGED:
        specifier = requirements[name].specifier
        assert not any(s.operator == "==" for s in specifier), f"{name} is pinned in pyproject.toml: {specifier}"
        assert specifier.contains(highest[name]) and specifier.contains(lowest[name]), (name, specifier)
        lower = [s.version for s in specifier if s.operator == ">="]
        assert lower and lowest[name].startswith(lower[0]), f"{name}: the range starts at {lower}, tested {lowest[name]}"
    # Keras 3 arrived with TensorFlow 2.16: nothing older can be the lowest.
    assert tuple(int(p) for p in lowest["tensorflow"].split(".")[:2]) >= (2, 16)
