"""The PyTorch flavor with real torch: whole modules and state dicts, saved, verified and loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cairn.client._flavors import ModelError, load_model_dir, save_model


def make_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))


def test_whole_module_round_trip(tmp_path: Path) -> None:
    module = make_module()
    example = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    manifest = save_model(module, tmp_path / "m", input_example=example)
    assert manifest["flavor"] == "pytorch"
    assert any(r.startswith("torch==") for r in manifest["requirements"])
    assert manifest["signature"]["inputs"]["type"] == "tensor"
    loaded = load_model_dir(tmp_path / "m")
    with torch.no_grad():
        expected = module(torch.from_numpy(example)).numpy()
    np.testing.assert_allclose(np.asarray(loaded.predict(example)), expected, rtol=1e-6)


def test_state_dict_round_trip(tmp_path: Path) -> None:
    module = make_module()
    save_model(module.state_dict(), tmp_path / "sd")
    loaded = load_model_dir(tmp_path / "sd")
    fresh = make_module()
    fresh.load_state_dict(loaded.raw)
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[name])
    with pytest.raises(ModelError, match="state dict"):
        loaded.predict(np.zeros((1, 4), dtype=np.float32))
