"""12장 초해상도: 평가 약속(Y, PSNR, SSIM, modcrop), 모델 모양, 수용 영역, 타일 추론, 패치 짝,
데이터 나누기, 짧은 학습이 바이큐빅을 이기는지, --predict 와 잘못된 입력."""

from __future__ import annotations

import copy
import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import ROOT, SHARED_DATA, load_chapter
from PIL import Image, ImageFilter

from utils.data import superres
from utils.runtime import UserError

SCRIPT = ROOT / "12_srgan_super_resolution.py"
SR_DATA = SHARED_DATA / "sr"


@pytest.fixture(scope="module")
def ch12():
    return load_chapter("12")


def photo(width: int = 60, height: int = 44, seed: int = 0) -> Image.Image:
    """매끄러운 무늬 + 잡음의 작은 RGB 사진 (자연 사진처럼 낮은·높은 주파수가 섞임)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / 5 + c) * np.cos(yy / 7 - c) for c in range(3)], axis=-1)
    pixels = 127 + 90 * base + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


# --- 평가 약속 ----------------------------------------------------------------------------------
def test_ycbcr_matches_matlab_rgb2ycbcr_and_inverts(ch12):
    """BT.601 스튜디오 범위: 검정 Y 16, 흰색 235, 빨강 (81.481, 90.203, 240) — MATLAB rgb2ycbcr 의 값."""
    rgb = torch.tensor([[0, 255, 255], [0, 255, 0], [0, 255, 0]], dtype=torch.uint8)[:, None, :]  # (3, 1, 3)
    ycbcr = ch12.rgb_to_ycbcr(rgb)[:, 0]  # (3, 3): 열 = 검정, 흰색, 빨강
    expected = torch.tensor([[16.0, 235.0, 81.481], [128.0, 128.0, 90.203], [128.0, 128.0, 240.0]],
                            dtype=torch.float64)
    assert torch.allclose(ycbcr, expected, atol=1e-3)
    pixels = torch.from_numpy(np.array(photo())).permute(2, 0, 1)
    assert (ch12.ycbcr_to_rgb(ch12.rgb_to_ycbcr(pixels)).int() - pixels.int()).abs().max() <= 1


def test_psnr_by_hand_and_border_shave(ch12):
    """밝기 1 단계(1/255) 오차 → MSE 1 → 20·log10(255) dB; 가장자리에만 있는 오차는 shave 로 사라짐."""
    hr = torch.full((1, 20, 20), 0.5)
    assert math.isclose(ch12.psnr(hr + 1 / 255, hr, 0), 20 * math.log10(255), rel_tol=1e-6)
    sr = hr.clone()
    sr[:, :2, :] = 0  # 위쪽 두 줄만 크게 틀림
    assert ch12.psnr(sr, hr, 2) == math.inf
    assert ch12.psnr(sr, hr, 1) < 30


def test_ssim_by_hand_matches_torchmetrics(ch12):
    """손으로 짠 SSIM (가우스 11, σ 1.5, 255 단위) = torchmetrics 의 structural_similarity_index_measure."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    hr = ch12.y_channel(photo(64, 48, seed=1))
    sr = ch12.y_channel(photo(64, 48, seed=1).filter(ImageFilter.BLUR))
    ours = ch12.ssim(sr, hr, 4)
    # torchmetrics 는 반사(reflect) 패딩한 가장자리 창까지 평균하므로, 창이 이미지 안에 다 들어가는
    # 안쪽(가장자리 5 픽셀 제외: MATLAB ssim_index 와 Wang 2004 의 'valid')만 평균해 비교합니다.
    _, full_map = structural_similarity_index_measure(
        ch12.shave(sr, 4)[None].double() * 255, ch12.shave(hr, 4)[None].double() * 255,
        gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0, return_full_image=True)
    reference = full_map[..., 5:-5, 5:-5].mean().item()
    assert 0.2 < ours < 0.99 and math.isclose(ours, reference, abs_tol=1e-6)
    assert math.isclose(ch12.ssim(hr, hr, 4), 1.0, abs_tol=1e-12)


def test_modcrop_and_pair_sizes(ch12):
    """HR 은 scale 의 배수로 (왼쪽 위 그대로), LR 은 정확히 1/scale, 바이큐빅은 HR 과 같은 크기."""
    picture = photo(61, 46)
    for scale in (2, 3, 4):
        pair = ch12.make_pair("x", picture, scale)
        height, width = pair.hr_y.shape[-2:]
        assert height % scale == 0 and width % scale == 0 and width > 61 - scale and height > 46 - scale
        assert pair.lr_y.shape[-2:] == (height // scale, width // scale)
        assert pair.bicubic_y.shape == pair.hr_y.shape
        assert np.array_equal(np.array(pair.hr), np.array(picture)[:height, :width])


@pytest.mark.skipif(not SR_DATA.is_dir(), reason="../shared/data/sr 가 없음")
def test_bicubic_on_set5_and_set14_matches_the_published_protocol(ch12):
    """×4 바이큐빅: Set5 28.42, Set14 26.00 dB (SRCNN·SRGAN 논문). Y·shave·modcrop 중 하나만 틀려도 어긋남."""
    data = superres.load_benchmarks(SR_DATA, 0.1)
    # (논문 값, 허용 차): PIL 과 MATLAB 의 바이큐빅 차이 몫. 가장자리를 깎지 않으면 Set14 가 25.86 으로 어긋남
    published = {"set5": (28.42, 0.05), "set14": (26.00, 0.12)}
    for key, (value, tolerance) in published.items():
        pairs = [ch12.make_pair(name, picture, 4) for name, picture in data.tests[key]]
        measured = ch12.evaluate(None, pairs, "cpu", scale=4, full=False)["psnr"]
        assert abs(measured - value) < tolerance, (key, measured)
    assert [name for name, _ in data.tests["set5"]] == ["baby_GT", "bird_GT", "butterfly_GT", "head_GT",
                                                        "woman_GT"]
    assert len(data.train) + len(data.val) == 91 and len(data.val) == 9


def test_sharpness_orders_blur_below_one(ch12):
    """선명도 = HF(SR)/HF(HR): 자기 자신 1, 바이큐빅으로 흐린 것은 훨씬 작음."""
    pair = ch12.make_pair("x", photo(64, 64), 4)
    assert math.isclose(ch12.sharpness(pair.hr_y, pair.hr_y, 4), 1.0)
    assert ch12.sharpness(pair.bicubic_y, pair.hr_y, 4) < 0.5


# --- 모델 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_model_output_is_scale_times_input(ch12, scale):
    model = ch12.build_model(scale=scale, width=8, blocks=1).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 7, 9)).shape == (2, 1, 7 * scale, 9 * scale)
        assert ch12.build_srcnn(8, 4)(torch.rand(1, 1, 20, 21)).shape == (1, 1, 20, 21)


def test_pixel_shuffle_by_hand_matches_library(ch12):
    x = torch.randn(2, 2 * 4, 3, 5)
    assert torch.equal(ch12.pixel_shuffle_by_hand(x, 2), nn.PixelShuffle(2)(x))


def influence_width(model, size: int, scale: int) -> int:
    """가운데 출력 픽셀 하나의 기울기가 0 이 아닌 입력의 폭 (실측 수용 영역).

    무작위 초기화 그대로 재면, 폭이 좁은 망에서는 시드에 따라 가운데의 ReLU 가 모두 꺼져 기울기가
    0 일 수 있음 (초기화 200번에 2번). 그래서 복사본의 합성곱
    가중치와 bias 를 양수로 바꿔 양수 입력에서 모든 ReLU 가 켜지게 함: 그러면 기울기는 수용 영역
    안의 모든 입력에서 0 보다 크고, 밖에서는 정확히 0.
    """
    model = copy.deepcopy(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(module.weight.abs() + 1e-3)
                if module.bias is not None:
                    module.bias.copy_(module.bias.abs() + 0.1)
    torch.manual_seed(0)
    x = torch.rand(1, 1, size, size, requires_grad=True)
    out = model(x)
    centre = out.shape[-1] // 2
    out[0, 0, centre, centre].backward()
    columns = (x.grad[0, 0].abs().sum(dim=0) > 0).nonzero().flatten()
    return int(columns.max() - columns.min() + 1)


def test_receptive_field_formula_matches_gradients(ch12):
    """SRCNN 9-5-5 는 9 + 4 + 4 = 17 픽셀; 잔차 망은 공식과 기울기로 잰 폭이 한 픽셀 안에서 같음."""
    srcnn = ch12.build_srcnn(4, 4)
    assert ch12.receptive_field(srcnn) == 17 == influence_width(srcnn, 41, 1)
    model = ch12.build_model(scale=4, width=4, blocks=2)  # 바이큐빅 전역 잔차(폭 4)보다 망이 넓게 봄
    assert abs(influence_width(model, 41, 4) - ch12.receptive_field(model)) <= 1


def test_tiled_upscaling_equals_whole_image(ch12):
    """여백 ⌈수용 영역/2⌉ 의 타일로 키운 결과 = 통째로 키운 결과 (타일 경계 자국 없음)."""
    torch.manual_seed(0)
    model = ch12.build_model(scale=3, width=6, blocks=2).eval()
    lr = torch.rand(1, 40, 37)
    with torch.no_grad():
        whole = model(lr[None])[0].clamp(0, 1)
    assert torch.allclose(ch12.upscale_tiled(model, lr, "cpu", tile=16), whole, atol=1e-5)


# --- 데이터 -------------------------------------------------------------------------------------
def test_random_patches_are_aligned_under_flips(ch12):
    """LR 패치 = HR 패치의 s x s 평균 (LR 을 평균 풀링으로 만들면): 뒤집기·전치 뒤에도 같은 장면."""
    scale = 4
    hr = [torch.rand(1, 40, 48), torch.rand(1, 64, 32)]
    lr = [F.avg_pool2d(h[None], scale)[0] for h in hr]
    lr_batch, hr_batch = superres.random_patches(hr, lr, 32, 16, scale, torch.Generator().manual_seed(0))
    assert lr_batch.shape == (32, 1, 4, 4) and hr_batch.shape == (32, 1, 16, 16)
    assert torch.allclose(F.avg_pool2d(hr_batch, scale), lr_batch, atol=1e-6)
    again = superres.random_patches(hr, lr, 32, 16, scale, torch.Generator().manual_seed(0))
    assert torch.equal(again[1], hr_batch)  # 같은 generator 상태 → 같은 패치 (이어하기)


def test_offline_split_holds_out_regions():
    """오프라인 사진(반으로 줄임): 시험은 오른쪽 1/4 띠, 검증은 왼쪽의 아래 1/4, 학습은 그 위 (안 겹침)."""
    data = superres.load_sr_data("offline", ROOT / "data", smoke=False, val_fraction=0.1)
    assert "offline" in data.name and len(data.train) == len(data.val) == len(data.tests["heldout"]) == 3
    halved = [p.resize((p.width // 2, p.height // 2), Image.BICUBIC) for _, p in superres.offline_photos()]
    for full, (_, train), (_, val), (_, test) in zip(halved, data.train, data.val, data.tests["heldout"]):
        pixels = np.array(full)
        assert train.width + test.width == full.width == val.width + test.width
        assert train.height + val.height == full.height == test.height
        assert np.array_equal(np.array(test), pixels[:, train.width:])
        assert np.array_equal(np.array(val), pixels[train.height:, :train.width])
        assert np.array_equal(np.array(train), pixels[:train.height, :train.width])


def test_photo_folder_and_benchmark_layout(tmp_path):
    """사진 폴더: 회색조·RGBA 도 RGB 로, 시험·검증·학습에 한 장 이상; T91/Set5/Set14 폴더는 벤치마크로."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photo(40, 30, 1).save(folder / "a.png")
    photo(40, 30, 2).convert("L").save(folder / "b.png")
    photo(40, 30, 3).convert("RGBA").save(folder / "c.png")
    photo(40, 30, 4).save(folder / "d.jpg")
    (folder / "notes.txt").write_text("not an image")
    data = superres.load_sr_data("real", folder, smoke=False, val_fraction=0.25)
    assert len(data.train) == 2 and len(data.val) == 1 and len(data.tests["heldout"]) == 1
    assert all(image.mode == "RGB" for _, image in data.train + data.val + data.tests["heldout"])
    bench = tmp_path / "bench" / "sr"
    for name in superres.BENCHMARK_FOLDERS:
        (bench / name).mkdir(parents=True)
        for index in range(3):
            photo(40, 32, index).save(bench / name / f"img{index}.bmp")
    data = superres.load_sr_data("real", tmp_path / "bench", smoke=False, val_fraction=0.1)
    assert set(data.tests) == {"set5", "set14"} and len(data.train) == 2 and len(data.val) == 1


def test_missing_data_is_refused_or_replaced(tmp_path, capsys):
    with pytest.raises(UserError, match="T91"):
        superres.load_sr_data("real", tmp_path / "nothing", smoke=False, val_fraction=0.1)
    data = superres.load_sr_data("auto", tmp_path / "nothing", smoke=False, val_fraction=0.1)
    assert "offline" in data.name and "대신합니다" in capsys.readouterr().out
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="broken.png"):
        superres.read_rgb(broken)


# --- 학습 ---------------------------------------------------------------------------------------
def test_short_training_beats_bicubic_on_held_out_crops(ch12):
    """오프라인 사진에서 작은 망을 150 걸음만 학습해도 처음 보는 영역에서 바이큐빅보다 0.2 dB 넘게 높음.

    전역 잔차 덕에 학습 전 모델도 바이큐빅 근처라, 이 차이는 망이 배운 고주파에서만 나옵니다.
    """
    data = superres.load_sr_data("offline", ROOT / "data", smoke=False, val_fraction=0.1)
    train = [ch12.make_pair(n, p, 4) for n, p in data.train]
    test = [ch12.make_pair(n, p, 4) for n, p in data.tests["heldout"]]
    torch.manual_seed(0)
    model = ch12.build_model(scale=4, width=16, blocks=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    ch12.train_one_epoch(model, [p.lr_y for p in train], [p.hr_y for p in train], optimizer, None, "cpu", 1,
                         steps=150, batch_size=16, patch_size=48, ratio=4,
                         generator=torch.Generator().manual_seed(0))
    trained = ch12.evaluate(model, test, "cpu", scale=4, full=False)["psnr"]
    bicubic = ch12.evaluate(None, test, "cpu", scale=4, full=False)["psnr"]
    assert trained > bicubic + 0.2, (trained, bicubic)


def test_gan_weights_follow_the_validation_rule(ch12):
    """SRGAN 가중치 기본값 = 검증 숫자 표(T91 에서 뗀 9장)에 정한 규칙을 적용한 결과 (Set5/Set14 는 안 봄).

    규칙: 검증 PSNR 이 바이큐빅과 본 모델의 가운데 이상 + 선명도가 본 모델보다 높은 후보 중 |ln 선명도| 최소.
    """
    reference, table = ch12.GAN_VALIDATION_REFERENCE, ch12.GAN_WEIGHT_CANDIDATES
    assert 2 <= len(table) <= 4 and None not in reference.values()
    defaults = (ch12.Config.adversarial_weight, ch12.Config.feature_weight, ch12.Config.pixel_weight)
    assert ch12.choose_gan_weights(table, reference["bicubic_psnr"], reference["psnr_model_psnr"],
                                   reference["psnr_model_sharpness"]) == defaults
    # 규칙 자체: 바이큐빅 28, 본 모델 30 (선 29), 본 모델 선명도 0.2
    made_up = {"blurry": (29.9, 0.25), "noisy": (29.2, 1.6), "textured": (29.1, 0.8), "too_far": (28.9, 1.0),
               "no_texture": (29.5, 0.15)}
    assert ch12.choose_gan_weights(made_up, 28.0, 30.0, 0.2) == "textured"  # 0.8 이 1.6 보다 HR 에 가까움
    assert ch12.choose_gan_weights({"too_far": (28.9, 1.0)}, 28.0, 30.0, 0.2) is None


def test_validation_metrics_come_from_the_validation_split(ch12, trained_dir):
    """metrics.json 의 val_srgan_psnr·val_sharpness_srgan 은 검증 사진에서 잰 값 (시험 조각이 아님)."""
    metrics = json.loads((trained_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    data = superres.load_sr_data("offline", ROOT / "data", smoke=True, val_fraction=0.1)
    val = [ch12.make_pair(n, p, 4) for n, p in data.val]
    config = ch12.Config(out_dir=str(trained_dir), device="cpu")
    generator, _ = ch12.training.load_trained_model(trained_dir / "srgan.pt", ch12.build_model, config, "cpu",
                                                    purpose="test")
    expected = ch12.evaluate(generator, val, "cpu", scale=4)
    assert math.isclose(metrics["val_srgan_psnr"], expected["psnr"], abs_tol=1e-3)
    assert math.isclose(metrics["val_sharpness_srgan"], expected["sharpness"], abs_tol=1e-3)
    assert {"val_psnr", "val_bicubic_psnr", "val_sharpness_psnr_model",
            "val_sharpness_bicubic"} <= set(metrics)


# --- 추론과 잘못된 입력 ---------------------------------------------------------------------------
def run_in_process(ch12, argv, capsys) -> tuple[int, str, str]:
    try:
        ch12.run(ch12.main, ch12.Config, argv=argv)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def trained_dir(smoke_run, tmp_path):
    result, smoke_dir = smoke_run(SCRIPT)
    assert result.returncode == 0, result.stderr[-2000:]
    out_dir = tmp_path / "out"
    shutil.copytree(smoke_dir, out_dir)
    return out_dir


@pytest.mark.parametrize("mode,size", [("L", (41, 45)), ("RGBA", (50, 42)), ("RGB", (130, 101))])
@pytest.mark.parametrize("which", ["psnr", "srgan"])
def test_predict_writes_scale_times_larger_rgb(ch12, trained_dir, tmp_path, capsys, mode, size, which):
    """회색조·RGBA 도 RGB 로 받고, prediction.png 는 정확히 가로·세로 ×4 (타일 여러 개인 130x101 포함)."""
    source = tmp_path / "input.png"
    photo(*size).convert(mode).save(source)
    argv = ["--device", "cpu", "--out-dir", str(trained_dir), "--predict", str(source),
            "--predict-model", which]
    code, out, err = run_in_process(ch12, argv, capsys)
    assert code == 0, err
    prediction = Image.open(trained_dir / "prediction.png")
    assert prediction.mode == "RGB" and prediction.size == (size[0] * 4, size[1] * 4)
    assert Image.open(trained_dir / "bicubic.png").size == prediction.size
    record = json.loads((trained_dir / "prediction.json").read_text(encoding="utf-8"))
    assert record["model"] == which and record["output_size"] == [size[0] * 4, size[1] * 4]


def test_resume_skips_finished_srcnn_and_srgan(ch12, trained_dir, capsys):
    before = json.loads((trained_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    argv = ["--smoke", "--data", "offline", "--device", "cpu", "--out-dir", str(trained_dir), "--resume"]
    code, out, err = run_in_process(ch12, argv, capsys)
    assert code == 0, err
    assert "[SRCNN]" in out and "[SRGAN]" in out and out.count("건너뜁니다") == 2
    assert json.loads((trained_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"] == before


def bad_inputs(tmp_path):
    tiny = tmp_path / "tiny.png"
    photo(12, 30).save(tiny)
    unreadable = tmp_path / "photo.png"
    unreadable.write_bytes(b"this is not a png")
    return [(["--predict", str(tiny)], "수용 영역"), (["--predict", str(unreadable)], "photo.png"),
            (["--predict", str(tmp_path)], "폴더"), (["--scale", "5"], "--scale"),
            (["--predict", str(tmp_path / "missing.png")], "없습니다")]


def test_bad_inputs_are_one_line_and_exit_2(ch12, trained_dir, tmp_path, capsys):
    for flags, words in bad_inputs(tmp_path):
        argv = ["--device", "cpu", "--out-dir", str(trained_dir), *flags]
        code, _, err = run_in_process(ch12, argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("오류: "), (flags, err)
        assert words in lines[0], (flags, err)
