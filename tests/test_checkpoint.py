"""Checkpoints (jepa_core.checkpoint): written atomically, and any file that is not a whole
workbook checkpoint fails with a CheckpointError naming the file, never a torch/pickle traceback.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tiny_runs import tiny

import jepa_core.checkpoint as checkpoint
from jepa_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jepa_core.train import CHECKPOINT_NAME, load_trained, train


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """The output folder of a real (tiny) training run, holding its checkpoint."""
    out = tmp_path_factory.mktemp("real_run")
    train("ijepa", overrides=tiny(out, **{"train.epochs": 1}), progress=False)
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def truncate_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_round_trip_keeps_the_state_and_tags_the_format(tmp_path):
    state = {
        "epoch": 3,
        "weights": {"w": torch.arange(6.0).reshape(2, 3)},
        "history": [{"loss": 0.5}],
    }
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", state)
    loaded = load_checkpoint(path)
    assert loaded["format"] == checkpoint.FORMAT
    assert loaded["epoch"] == 3 and loaded["history"] == [{"loss": 0.5}]
    assert torch.equal(loaded["weights"]["w"], state["weights"]["w"])


def test_saving_leaves_no_temporary_file(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", {"epoch": 1})
    save_checkpoint(tmp_path / "ck.pt", {"epoch": 2})  # overwrite goes through the .tmp too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]
    assert load_checkpoint(tmp_path / "ck.pt")["epoch"] == 2


def test_a_save_that_fails_midway_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "ck.pt", {"epoch": 1, "w": torch.ones(1000)})
    real_save = torch.save

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip archive")  # some bytes reach the disk, then the crash
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", dies_halfway)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(1000)})
    monkeypatch.setattr(checkpoint.torch, "save", real_save)

    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(1000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_training_leaves_a_checkpoint_and_no_temporary_file(real_run):
    assert (real_run / CHECKPOINT_NAME).exists()
    assert not list(real_run.glob("*.tmp"))


def test_missing_file_raises_checkpoint_error_naming_it(tmp_path):
    path = tmp_path / "nowhere.pt"
    with pytest.raises(CheckpointError, match="does not exist") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_truncated_checkpoint_raises_checkpoint_error_naming_the_file(real_run, tmp_path):
    path = copy_run(real_run, tmp_path / "run") / CHECKPOINT_NAME
    truncate_in_half(path)
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointError) as info:
        load_trained(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [1, 9, 100, 1000])
def test_checkpoint_cut_anywhere_raises_checkpoint_error(real_run, tmp_path, keep):
    path = tmp_path / "cut.pt"
    path.write_bytes((real_run / CHECKPOINT_NAME).read_bytes()[:keep])
    with pytest.raises(CheckpointError, match="cannot be read") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content", [b"", b"hello world\n", b"epoch: 3\nloss: 0.5\n", bytes(range(256)) * 4]
)
def test_foreign_bytes_raise_checkpoint_error_naming_the_file(tmp_path, content):
    path = tmp_path / "foreign.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "obj",
    [torch.zeros(3), {"model": torch.zeros(3)}, [1, 2, 3]],
    ids=["tensor", "dict_without_format", "list"],
)
def test_a_pytorch_file_that_is_not_a_workbook_checkpoint_raises_checkpoint_error(tmp_path, obj):
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="not a JEPA Workbook checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_resume_from_a_truncated_checkpoint_raises_checkpoint_error(real_run, tmp_path):
    out = copy_run(real_run, tmp_path / "run")
    truncate_in_half(out / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError) as info:
        train(
            "ijepa",
            overrides=tiny(out, **{"train.epochs": 1, "train.resume": True}),
            progress=False,
        )
    assert str(out / CHECKPOINT_NAME) in str(info.value)


def test_load_trained_restores_the_saved_weights_and_history(real_run):
    state = load_checkpoint(real_run / CHECKPOINT_NAME)
    loaded = load_trained(real_run)
    for name in ("context_encoder", "target_encoder", "predictor"):
        module_state = getattr(loaded, name).state_dict()
        assert module_state.keys() == state[name].keys()
        assert all(torch.equal(module_state[k], state[name][k]) for k in module_state), name
    assert list(loaded.history["step"]) == [h["step"] for h in state["history"]]
