"""Tests of the torch RAFT in training/raft: shapes, lookup, ONNX parity and card, training, padding, data."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


from training.raft.correlation import CorrBlock, grid_sample_lookup, window_lookup  # noqa: E402
from training.raft.data import (  # noqa: E402
    TEST_SEEDS,
    TRAIN_SEEDS,
    VALIDATION_SEEDS,
    GlacierFlowDataset,
    augment,
    frame_motion,
    input_gain,
    preprocess_for_flow,
    surface_texture,
)
from training.raft.export import REQUIRED_CARD_KEYS, export_onnx, model_card, read_card, verify  # noqa: E402
from training.raft.raft import RAFT, RAFTConfig, pad_to_multiple, padding_for, unpad  # noqa: E402
from training.raft.train import sequence_loss  # noqa: E402

torch.set_num_threads(2)


@pytest.mark.parametrize("small", [True, False])
def test_forward_shapes(small: bool) -> None:
    torch.manual_seed(0)
    model = RAFT(RAFTConfig(small=small, in_channels=2, iters=2)).eval()
    with torch.no_grad():
        preds = model(torch.randn(1, 2, 128, 128), torch.randn(1, 2, 128, 128))
        assert len(preds) == 2 and all(p.shape == (1, 2, 128, 128) for p in preds)
        x = torch.randn(1, 2, 136, 200)
        xp, pads = pad_to_multiple(x)
        assert xp.shape[-2:] == (136, 200)          # already multiples of 8, above 128
        flow = model(xp, xp, final_only=True)
        assert len(flow) == 1 and unpad(flow[-1], pads).shape == (1, 2, 136, 200)
        if not small:
            return
        odd = torch.randn(1, 2, 101, 131)           # small and odd: padded to 128 x 136
        oddp, pads = pad_to_multiple(odd)
        assert oddp.shape[-2:] == (128, 136)
        out = unpad(model(oddp, oddp, iters=1)[-1], pads)
        assert out.shape == (1, 2, 101, 131) and torch.isfinite(out).all()


@pytest.mark.parametrize("in_channels", [1, 3])
def test_other_input_channels(in_channels: int) -> None:
    model = RAFT(RAFTConfig(small=True, in_channels=in_channels, iters=1)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, in_channels, 128, 128), torch.randn(1, in_channels, 128, 128))
    assert out[-1].shape == (1, 2, 128, 128)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gather_lookup_matches_grid_sample(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    level = torch.rand(12, 1, 9, 13, generator=g, dtype=dtype)
    centres = torch.rand(12, 2, generator=g, dtype=dtype) * torch.tensor([18.0, 14.0], dtype=dtype) - 3
    centres[0] = torch.tensor([4.0, 5.0])            # on integer cells
    centres[1] = torch.tensor([-40.0, 3.5])          # far outside
    centres[2] = torch.tensor([12.999, 8.25])        # at the far edge
    for radius in (1, 3, 4):
        ours = window_lookup(level, centres, radius)
        ref = grid_sample_lookup(level, centres, radius)
        assert ours.shape == ref.shape == (12, (2 * radius + 1) ** 2)
        assert torch.max(torch.abs(ours - ref)) < 1e-5


def test_corr_block_pyramid_lookup() -> None:
    g = torch.Generator().manual_seed(2)
    f1, f2 = torch.randn(2, 16, 16, 20, generator=g), torch.randn(2, 16, 16, 20, generator=g)
    block = CorrBlock(f1, f2, num_levels=4, radius=3)
    coords = torch.rand(2, 2, 16, 20, generator=g) * 24 - 2
    out = block(coords)                                          # (B, L*K, H, W)
    assert out.shape == (2, block.out_channels, 16, 20)
    centres = coords.permute(0, 2, 3, 1).reshape(-1, 2)
    for i, level in enumerate(block.pyramid):
        ref = grid_sample_lookup(level, centres / 2 ** i, 3).reshape(2, 16, 20, -1).permute(0, 3, 1, 2)
        assert torch.allclose(out[:, i * 49:(i + 1) * 49], ref, atol=1e-5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[RAFT, str]:
    """A RAFT-small with nonzero flows exported at 1x2x128x128 (dynamic N, H, W), 4 iterations."""
    torch.manual_seed(3)
    model = RAFT(RAFTConfig(small=True, in_channels=2, iters=4)).eval()
    with torch.no_grad():                              # larger flows than at init: a stronger check
        model.update.flow_head.conv2.weight.mul_(20.0)
    path = str(tmp_path_factory.mktemp("onnx") / "raft_small.onnx")
    card = model_card(model, 4, {"generator": "test"}, {"epe_glacier_mean_px": 0.5})
    export_onnx(model, path, iters=4, card=card, sample_hw=(128, 128))
    return model, path


def test_onnx_parity_dynamic_shapes(exported: tuple[RAFT, str]) -> None:
    model, path = exported
    with torch.no_grad():
        x = torch.randn(2, 2, 128, 160)
        assert model(x, torch.roll(x, 3, dims=3), iters=4)[-1].abs().max() > 0.5   # not trivial
    assert verify(model, path, 4, shape=(2, 2, 128, 160)) < 1e-3
    assert verify(model, path, 4, shape=(1, 2, 136, 128), seed=1) < 1e-3


def test_onnx_graph_uses_gather_not_grid_sample(exported: tuple[RAFT, str]) -> None:
    import onnx

    ops = {node.op_type for node in onnx.load(exported[1]).graph.node}
    assert "GridSample" not in ops and "GatherElements" in ops


def test_model_card(exported: tuple[RAFT, str]) -> None:
    import onnxruntime as ort

    card = read_card(exported[1])
    assert set(REQUIRED_CARD_KEYS) <= set(card)
    assert card["task"] == "optical_flow" and card["input_channels"] == 2
    assert (card["tile_size"], card["min_size"], card["multiple"], card["iterations"]) == (256, 128, 8, 4)
    assert card["metrics"]["epe_glacier_mean_px"] == 0.5
    raw = ort.InferenceSession(exported[1], providers=["CPUExecutionProvider"]).get_modelmeta()
    assert json.loads(raw.custom_metadata_map["architecture"]) == "RAFT-small"


def test_training_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = RAFT(RAFTConfig(small=True, in_channels=2, iters=2)).train()
    g = torch.Generator().manual_seed(10)
    base = torch.nn.functional.avg_pool2d(torch.randn(2, 2, 136, 136, generator=g), 3, 1, 1)
    image1 = base[:, :, 4:132, 4:132]
    image2 = base[:, :, 2:130, 5:133]               # content moves by dx = -1, dy = +2
    flow = torch.zeros(2, 2, 128, 128)
    flow[:, 0], flow[:, 1] = -1.0, 2.0
    valid = torch.ones(2, 128, 128)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(6):
        loss, metrics = sequence_loss(model(image1, image2), flow, valid)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-2:]) < 0.8 * losses[0]


@pytest.mark.parametrize("shape", [(1, 1), (101, 131), (128, 128), (136, 200), (300, 17), (257, 255)])
def test_padding_round_trip(shape: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *shape)
    padded, pads = pad_to_multiple(x)
    h, w = padded.shape[-2:]
    assert h % 8 == 0 and w % 8 == 0 and h >= 128 and w >= 128
    assert h - shape[0] < 8 or h == 128
    assert pads == padding_for(*shape)
    assert torch.equal(unpad(padded, pads), x)
    assert torch.equal(unpad(pad_to_multiple(x, mode="replicate")[0], pads), x)


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("flip", [False, True])
def test_augmentation_moves_flow_vectors_with_the_image(k: int, flip: bool) -> None:
    a, b = np.zeros((1, 32, 32), np.float32), np.zeros((1, 32, 32), np.float32)
    a[0, 10, 7] = 1.0                                 # feature at (row 10, col 7) ...
    b[0, 13, 12] = 1.0                                # ... is at (13, 12) in B: dx = 5, dy = 3
    flow = np.zeros((2, 32, 32), np.float32)
    flow[0], flow[1] = 5.0, 3.0
    (a2, b2), f2, _ = augment([a, b], flow, np.ones((32, 32), bool), k, flip, vector_images=False)
    ra, ca = np.unravel_index(np.argmax(a2[0]), a2[0].shape)
    rb, cb = np.unravel_index(np.argmax(b2[0]), b2[0].shape)
    assert (cb - ca, rb - ra) == (f2[0, ra, ca], f2[1, ra, ca])


@pytest.mark.parametrize("seed", range(4))
def test_frame_motion_keeps_the_truth_exact(seed: int) -> None:
    """Image 2 moved by a translation and a smooth field: sampling it along the new truth gives
    back the original image 2 sampled along the old truth (here: the identity)."""
    import cv2

    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.random((160, 160)).astype(np.float32), (0, 0), 2.5)
    flow = np.zeros((2, 160, 160), np.float32)
    moved, truth = frame_motion(np.random.default_rng(seed), texture, flow, probability=1.0)
    cols, rows = np.meshgrid(np.arange(160, dtype=np.float32), np.arange(160, dtype=np.float32))
    back = cv2.remap(moved, cols + truth[0], rows + truth[1], cv2.INTER_CUBIC, borderValue=float("nan"))
    inner = (slice(24, -24), slice(24, -24))
    shift = float(np.nanmean(np.hypot(*truth)[inner]))
    assert shift > 0.05                                              # the frame did move
    error = np.nanmedian(np.abs(back - texture)[inner])
    stale = np.nanmedian(np.abs(cv2.remap(moved, cols, rows, cv2.INTER_CUBIC) - texture)[inner])
    assert error < 0.1 * stale                                       # the truth follows the motion
    assert np.isnan(moved).any() or shift < 1                        # what came from outside is no data


@pytest.mark.parametrize("seed", range(3))
def test_surface_texture_moves_with_the_truth(seed: int) -> None:
    """Texture painted on both images follows the flow: image 2 sampled at x + f(x) is image 1."""
    from training.synthetic import bilinear_sample

    h = w = 96
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    flow = np.stack([3.0 + 2.0 * np.sin(rows / 30.0), 1.5 * np.cos(cols / 25.0)]).astype(np.float32)
    plain = np.full((h, w), 0.5, np.float32)                # no texture of its own: all comes from T
    a, b = surface_texture(np.random.default_rng(seed), plain, plain.copy(), flow, probability=1.0)
    assert np.nanstd(a) > 0.01                                          # something was painted
    back = bilinear_sample(np.nan_to_num(b), cols + flow[0], rows + flow[1])
    inner = (slice(12, -12), slice(12, -12))
    shifted = bilinear_sample(np.nan_to_num(b), cols, rows)           # ignoring the motion
    assert np.median(np.abs(back - a)[inner]) < 0.1 * np.median(np.abs(shifted - a)[inner]) + 1e-4
    # Sharp texture edges resampled twice (painting, then this check) leave a few larger residuals.
    assert np.mean(np.abs(back - a)[inner] < 0.05) > 0.9


def test_input_gain_scales_both_images_alike() -> None:
    rng = np.random.default_rng(3)
    im1, im2 = rng.standard_normal((2, 2, 32, 32)).astype(np.float32)
    gains = []
    for _ in range(40):
        out1, out2 = input_gain(rng, im1, im2)
        gain = float(np.median(out1 / im1))
        assert np.allclose(out1, gain * im1, rtol=1e-5) and np.allclose(out2, gain * im2, rtol=1e-5)
        gains.append(gain)
    changed = [g for g in gains if g != 1.0]
    assert 5 < len(changed) < 35 and all(0.6 <= g <= 2.5 for g in changed)


def test_sobel_channels_rotate_like_vectors() -> None:
    rng = np.random.default_rng(6)
    image = rng.random((40, 40)).astype(np.float32)
    grads = preprocess_for_flow(image)
    for k in range(4):
        for flip in (False, True):
            rotated = np.rot90(image, k)
            rotated = rotated[:, ::-1] if flip else rotated
            expected = preprocess_for_flow(np.ascontiguousarray(rotated))
            (got,), _, _ = augment([grads], np.zeros_like(grads), np.ones((40, 40), bool), k, flip, True)
            # The common p98 - p2 spread of {gx, gy} changes slightly when components swap sign.
            scale = float((got * expected).sum() / (got * got).sum())
            assert abs(scale - 1) < 0.03
            assert np.allclose(got * scale, expected, atol=1e-5)


def test_engine_benchmark_scenes_are_never_trained_on() -> None:
    from bench import bench_engines as bench

    assert bench.HELD_OUT_SEEDS == TEST_SEEDS
    assert not set(bench.HELD_OUT_SEEDS[:100]) & (set(TRAIN_SEEDS[:3000]) | set(VALIDATION_SEEDS[:100]))


def test_preprocess_matches_core() -> None:
    from glacierflow.core.velocity import preprocess as core

    rng = np.random.default_rng(7)
    band = (rng.random((64, 80)) * 0.3 + 0.1).astype(np.float32)
    band[5:9, 10:14] = np.nan
    expected, _ = core.prepare_for_flow(band, core.band_statistics([band]))
    assert np.allclose(preprocess_for_flow(band), expected, atol=1e-5)


def test_dataset_item_and_scene_split() -> None:
    assert TRAIN_SEEDS[-1] < VALIDATION_SEEDS.start and VALIDATION_SEEDS[-1] < TEST_SEEDS.start
    ds = GlacierFlowDataset(VALIDATION_SEEDS[:1], length=2, crop=128, scene_size=128)
    image1, image2, flow, valid = ds[1]
    assert image1.shape == image2.shape == (2, 128, 128) and flow.shape == (2, 128, 128)
    assert valid.shape == (128, 128) and valid.mean() > 0.5
    assert torch.isfinite(image1).all() and torch.isfinite(flow).all()
    again = ds[1]
    assert torch.equal(again[2], flow) and torch.equal(again[0], image1)   # items are deterministic
