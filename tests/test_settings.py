from pathlib import Path

from config.settings.base import env_path


def test_paths_from_the_environment_are_pathlib_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_ROOT", str(tmp_path))
    root = env_path("MODEL_ROOT", Path("/nowhere"))
    assert root == tmp_path and (root / "v1").parent == tmp_path
    monkeypatch.delenv("MODEL_ROOT")
    assert env_path("MODEL_ROOT", Path("/nowhere")) == Path("/nowhere")
