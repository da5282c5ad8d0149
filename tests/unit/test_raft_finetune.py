"""RAFT fine-tuning on a user's pairs: Horn-Schunck labels, the self-supervised loss, export and cancel."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from training.raft import finetune as ft  # noqa: E402
from training.raft.raft import RAFT, RAFTConfig  # noqa: E402
from training.sample import write_sample  # noqa: E402


@pytest.fixture(scope="module")
def sample_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune_sample")
    files = write_sample(str(folder), seed=11, shape=(256, 512), max_displacement_px=4.0)
    return files


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    """A small random RAFT-small checkpoint in the training checkpoint format."""
    from dataclasses import asdict

    torch.manual_seed(0)
    model = RAFT(RAFTConfig(small=True, in_channels=2, iters=4))
    path = str(tmp_path_factory.mktemp("ckpt") / "base.pt")
    torch.save({"config": asdict(model.config), "model": model.state_dict(), "step": 7}, path)
    return path


def test_horn_schunck_labels_follow_the_known_flow(sample_pair):
    tiles = ft.label_pair(sample_pair.image_a, sample_pair.image_b, 0, feedback=lambda m: None)
    assert tiles, "the sample has texture: some tiles must be labelled"
    from training.synthetic import glacier_pair

    truth = glacier_pair(shape=(256, 512), seed=11, max_displacement_px=4.0)
    for tile in tiles:
        c0 = tile.column * ft.TILE
        h, w = tile.valid.shape
        dx = truth.dx[:h, c0:c0 + w]
        err = np.abs(tile.flow[0] - dx)[tile.valid]
        assert np.median(err) < 0.3, "HS labels are the seed's labels: near the truth where trusted"
        assert tile.image1.shape == (2, h, w) and tile.flow.shape == (2, h, w)


def test_split_holds_out_a_pair_or_tile_columns():
    def tile(pair, column):
        z = np.zeros((2, 8, 8), np.float32)
        return ft.LabelledTile(z, z, z, np.ones((8, 8), bool), pair, column)

    train, val = ft.split_tiles([tile(0, 0), tile(0, 1), tile(1, 0)])
    assert {t.pair for t in train} == {0} and {t.pair for t in val} == {1}
    train, val = ft.split_tiles([tile(0, c) for c in range(8)])
    assert {t.column for t in val} == {6, 7} and not {t.column for t in train} & {6, 7}


def test_warp_samples_at_the_displaced_position():
    image = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 1.0                                   # one pixel right
    warped, inside = ft.warp(image, flow)
    assert torch.allclose(warped[0, 0, :, :7], image[0, 0, :, 1:])
    assert inside[0, 0, :, 7].sum() == 0 and inside[0, 0, :, :7].all()


def test_self_supervised_loss_recovers_a_shift_without_labels():
    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.normal(size=(1, 1, 64, 64)).astype(np.float32))
    base = torch.nn.functional.avg_pool2d(base, 5, 1, 2)          # smooth texture: a usable gradient
    shifted = torch.roll(base, shifts=1, dims=-1)                 # image 2: everything 1 px right
    flow = torch.zeros(1, 2, 64, 64, requires_grad=True)
    optimizer = torch.optim.Adam([flow], lr=0.05)
    start = float(ft.self_supervised_loss(flow.detach(), base, shifted))
    for _ in range(150):
        optimizer.zero_grad()
        loss = ft.self_supervised_loss(flow, base, shifted, smoothness=0.5)
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < start
    interior = flow.detach()[0, 0, 8:-8, 8:-8]
    assert abs(float(interior.median()) - 1.0) < 0.2


@pytest.mark.parametrize("labels", ft.LABEL_MODES)
def test_finetune_exports_a_model_with_its_card(sample_pair, base_checkpoint, tmp_path, labels):
    out = str(tmp_path / f"tuned_{labels}.onnx")
    result = ft.finetune([(sample_pair.image_a, sample_pair.image_b)], out, base_checkpoint, labels=labels,
                         steps=2, batch=2, crop=128, iters=2, export_iters=2, max_tiles_per_pair=4,
                         feedback=lambda m: None)
    assert os.path.exists(out) and result.output == out
    from training.raft.export import read_card

    card = read_card(out)
    assert card["task"] == "optical_flow" and card["training_data"]["labels"] == labels
    assert card["training_data"]["base_steps"] == 7
    assert "epe_vs_labels_mean_px" in card["metrics"]["validation_after"]
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_cancel_leaves_no_model(sample_pair, base_checkpoint, tmp_path):
    out = str(tmp_path / "cancelled.onnx")
    with pytest.raises(InterruptedError):
        ft.finetune([(sample_pair.image_a, sample_pair.image_b)], out, base_checkpoint, steps=5,
                    max_tiles_per_pair=2, feedback=lambda m: None, is_cancelled=lambda: True)
    assert os.listdir(tmp_path) == []


def test_pairs_csv_of_the_image_pairs_algorithm(tmp_path, sample_pair):
    path = tmp_path / "pairs.csv"
    path.write_text("first_id,second_id,first_href,second_href\n"
                    f"a,b,{sample_pair.image_a},{sample_pair.image_b}\n")
    assert ft.read_pairs_csv(str(path)) == [(sample_pair.image_a, sample_pair.image_b)]
