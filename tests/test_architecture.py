"""The layers of docs/architecture.md are the import contract that ./run test enforces, and the module list
there names every module of the package."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "facesearch"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "layers"]
    return [str(layer) for layer in contract["layers"]]


def section(marker: str) -> str:
    text = ARCHITECTURE.read_text()
    start = text.index(f"<!-- {marker}:")
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else len(text)]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(root / "src")}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True)


def test_the_diagram_is_the_import_contract() -> None:
    diagram = section("layers").split("```text", 1)[1].split("```", 1)[0]
    drawn = [
        " | ".join(re.findall(r"\b([a-z]+)/", line)) for line in diagram.splitlines() if re.search(r"[a-z]+/", line)
    ]
    assert drawn == contract_layers()


def test_every_top_level_package_is_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    layered = {name.strip() for layer in contract_layers() for name in layer.split("|")}
    assert packages == layered


def test_the_module_list_names_every_module_once() -> None:
    listed = re.findall(r"^\s*- `([a-z0-9_/]+\.py)`", section("modules"), re.MULTILINE)
    modules = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    assert sorted(listed) == modules


def test_imports_run_one_way() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: a copy of the package where the vocabulary layer imports the engine is refused."""
    shutil.copytree(PACKAGE, tmp_path / "src" / "facesearch", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    errors = tmp_path / "src" / "facesearch" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom facesearch.engine.engine import Engine  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "facesearch.core.errors -> facesearch.engine.engine" in result.stdout
