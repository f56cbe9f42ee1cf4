"""11장 오토인코더: 직접 쓴 조각(SSIM, PSNR, 가우시안 KL, 재매개변수화)을 라이브러리와 맞추고,
짧은 학습이 기준선을 이기는지, --predict 와 잘못된 입력이 약속대로인지 확인."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED_DATA, load_chapter, smoke_args


@pytest.fixture(scope="module")
def ch11():
    return load_chapter("11")


def one_line_exit(module, argv, capsys) -> str:
    """run(main, Config, argv) 가 종료 코드 2 와 한 줄 오류로 끝나는지. 그 줄을 돌려줌."""
    with pytest.raises(SystemExit) as exit_info:
        module.run(module.main, module.Config, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("오류: ") and "Traceback" not in err, err
    return err


def digit_images(count: int = 16) -> torch.Tensor:
    """sklearn digits 에서 [0, 1] 픽셀 (count, 1, 28, 28): 구조가 있는 실제 이미지 (임의 잡음보다 엄격)."""
    from utils.data import vision

    data = vision.sklearn_digits_28(seed=0)
    return (data.x_test[:count] * vision.MNIST_STD + vision.MNIST_MEAN).clamp(0, 1)


# --- 4. 평가: 직접 쓴 PSNR·SSIM = torchmetrics ------------------------------------------------------
def test_ssim_and_psnr_match_torchmetrics(ch11):
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    clean = digit_images()
    generator = torch.Generator().manual_seed(0)
    for noisy in (ch11.add_noise(clean, 0.1, generator), ch11.add_noise(clean, 0.5, generator),
                  ch11.apply_filter(ch11.add_noise(clean, 0.3, generator), "gaussian", 1.0)):
        # torchmetrics 는 반사 패딩한 28x28 지도 전체를 평균: 창이 다 들어가는 안쪽 18x18 만 잘라 평균
        _, full_map = structural_similarity_index_measure(noisy, clean, data_range=1.0, reduction="none",
                                                          return_full_image=True)
        border = (ch11.SSIM_WINDOW - 1) // 2
        expected = full_map[..., border:-border, border:-border].flatten(1).mean(1)
        assert torch.allclose(ch11.ssim(noisy, clean), expected, atol=1e-5)
        expected_psnr = peak_signal_noise_ratio(noisy, clean, data_range=1.0, dim=(1, 2, 3), reduction="none")
        assert torch.allclose(ch11.psnr(noisy, clean), expected_psnr, atol=1e-4)
    assert torch.allclose(ch11.ssim(clean, clean), torch.ones(len(clean)), atol=1e-6)  # 같으면 1


def test_noise_is_clipped_and_zero_sigma_is_identity(ch11):
    clean = digit_images()
    noisy = ch11.add_noise(clean, 0.5, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(ch11.add_noise(clean, 0.0, torch.Generator().manual_seed(0)), clean)
    # 중간 밝기에서는 거의 잘리지 않음: σ 가 픽셀 단위 그대로
    middle = ch11.add_noise(torch.full((200, 1, 28, 28), 0.5), 0.1, torch.Generator().manual_seed(0))
    assert abs((middle - 0.5).std().item() - 0.1) < 0.002


# --- 2. 모델: 모양 -----------------------------------------------------------------------------------
def test_autoencoder_shapes_and_symmetry(ch11):
    x = torch.rand(3, 1, 28, 28)
    conv = ch11.build_model("conv", latent_dim=8, width=4)
    shapes = [shape for _, shape in ch11.layer_shapes(conv, x)]
    assert (3, 4, 14, 14) in shapes and (3, 8, 7, 7) in shapes and (3, 8) in shapes  # 28 → 14 → 7 → Z
    # 디코더는 인코더의 거울: 공간 크기 28 → 14 → 7 | 7 → 14 → 28
    assert [s[-1] for s in shapes if len(s) == 4] == [28, 28, 14, 14, 14, 7, 7, 14, 14, 28, 28]
    assert shapes[-1] == x.shape
    for kind in ("dense", "conv"):
        model = ch11.build_model(kind, latent_dim=5, width=16)
        assert model(x).shape == x.shape and model.encode(x).shape == (3, 5)
        extreme = model.decoder(torch.randn(3, 5) * 1e3)  # 아주 큰 z 도 픽셀 범위 안 (마지막 Sigmoid)
        assert extreme.min() >= 0 and extreme.max() <= 1
    vae = ch11.build_model("vae", latent_dim=6, width=20)
    logits, mu, log_var = vae(x)
    assert logits.shape == x.shape and mu.shape == log_var.shape == (3, 6)
    with pytest.raises(ValueError, match="모르는 모델"):
        ch11.build_model("unet", latent_dim=2, width=2)


# --- VAE: 닫힌 꼴 KL = torch.distributions, 재매개변수화의 기울기 ------------------------------------
def test_gaussian_kl_matches_torch_distributions(ch11):
    from torch.distributions import Normal, kl_divergence

    torch.manual_seed(0)
    mu, log_var = torch.randn(7, 5) * 2, torch.randn(7, 5)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * log_var)), Normal(0.0, 1.0)).sum(dim=1)
    assert torch.allclose(ch11.gaussian_kl(mu, log_var), expected, atol=1e-5)
    assert torch.allclose(ch11.gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))  # q = p


def test_reparameterisation_is_differentiable_and_has_the_right_moments(ch11):
    torch.manual_seed(0)
    mu = torch.tensor([[1.5, -2.0]]).repeat(20000, 1).requires_grad_(True)
    log_var = torch.log(torch.tensor([[0.25, 4.0]])).repeat(20000, 1).requires_grad_(True)
    z = ch11.reparameterize(mu, log_var)
    assert torch.allclose(z.mean(0), torch.tensor([1.5, -2.0]), atol=0.05)
    assert torch.allclose(z.std(0), torch.tensor([0.5, 2.0]), atol=0.05)
    z.sum().backward()  # 표본 추출을 지나 μ, log σ² 로 기울기가 흐름 (dz/dμ = 1)
    assert torch.allclose(mu.grad, torch.ones_like(mu)) and log_var.grad.abs().sum() > 0


# --- 이상 탐지: 문턱값의 정밀도·재현율 ---------------------------------------------------------------
def test_threshold_metrics_by_hand(ch11):
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    is_anomaly = torch.tensor([False, False, True, False, True, True])
    # 문턱값 0.25 → 이상 판정 0.3, 0.4, 0.5, 0.6: 그중 진짜 이상 3개 → 정밀도 3/4, 재현율 3/3
    assert ch11.threshold_metrics(scores, is_anomaly, 0.25) == {"precision": 0.75, "recall": 1.0}
    assert ch11.threshold_metrics(scores, is_anomaly, 0.45) == {"precision": 1.0, "recall": 2 / 3}


# --- 학습 확인: 짧은 학습이 기준선을 이김 (sklearn digits, 수 초) -----------------------------------
@pytest.fixture(scope="module")
def digits(ch11):
    config = ch11.Config(data="offline", device="cpu")
    return config, ch11.load_data(config)


def test_short_training_denoises_and_detects_anomalies(ch11, digits):
    config, data = digits
    device = torch.device("cpu")
    generator = torch.Generator().manual_seed(1)
    noisy_val = ch11.add_noise(data.x_val, 0.5, generator)
    torch.manual_seed(0)
    model = ch11.build_model("conv", latent_dim=32, width=8)
    ch11.fit_autoencoder(model, data.x_train, 0.5, 8, config, device, "test")
    before = ch11.psnr(noisy_val, data.x_val).mean().item()
    after = ch11.evaluate(model, noisy_val, data.x_val, device)["psnr"]
    assert after > before + 5.0, (before, after)  # 잡음 입력보다 5 dB 이상 (보통 ≈ +7)
    short = ch11.Config(data="offline", device="cpu", anomaly_steps=300)
    metrics, *_ = ch11.one_class_anomaly(data, short, device)
    assert metrics["auroc"] > 0.9, metrics  # 우연(0.5)보다 훨씬 위
    assert 0 < metrics["anomaly_recall"] <= 1 and metrics["anomaly_threshold"] > 0


# --- 실행: --predict 와 잘못된 입력 ------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_dir(smoke_run, tmp_path_factory):
    """공통 시험과 함께 쓰는 점검 실행(smoke_run)의 출력을 복사해 씀 (장을 한 번 더 돌리지 않음)."""
    result, smoke_dir = smoke_run(ROOT / "11_autoencoder_anomaly.py")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out_dir = tmp_path_factory.mktemp("ch11_trained")
    for name in ("metrics.json", "best.pt", "anomaly.pt"):
        shutil.copy(smoke_dir / name, out_dir / name)
    return out_dir


def test_metrics_have_the_names_the_evaluation_reads(trained_dir):
    metrics = json.loads((trained_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    for key in ("noisy_psnr", "denoise_psnr", "pca_psnr", "filter_psnr", "auroc", "pca_auroc",
                "probe_accuracy", "pca_probe_accuracy", "vae_test_neg_elbo"):
        assert isinstance(metrics[key], float), key
    assert (trained_dir / "anomaly.pt").exists()
    # VAE: 시험 음의 ELBO 가 epoch 마다 내려감 (--smoke 는 3 epoch × 배치 하나, 시드 고정이라 늘 같음)
    curve = metrics["vae_neg_elbo_by_epoch"]
    assert len(curve) == 3 and all(b < a for a, b in zip(curve, curve[1:])), curve
    assert curve[-1] == metrics["vae_test_neg_elbo"]


@pytest.mark.skipif(not (SHARED_DATA / "mnist").exists(), reason="../shared/data/mnist 가 없음")
def test_real_mnist_is_read_as_unit_pixels(ch11):
    config = ch11.Config(data="real", data_dir=str(SHARED_DATA / "mnist"), device="cpu")
    data = ch11.load_data(config)
    assert data.name == "MNIST (real)" and len(data.x_test) == 10_000
    assert len(data.x_train) + len(data.x_val) == 60_000 and len(data.x_val) == 6_000
    assert data.x_train.min() == 0 and data.x_train.max() == 1  # 정규화를 되돌린 [0, 1] 픽셀
    assert abs(data.x_test.mean().item() - 0.1325) < 0.002  # MNIST 시험 세트의 픽셀 평균


def test_predict_any_size_grey_image_against_saved_threshold(ch11, trained_dir, tmp_path, capsys):
    image = (digit_images(1)[0, 0].numpy() * 255).astype(np.uint8)
    big = cv2.resize(255 - image, (90, 70), interpolation=cv2.INTER_LINEAR)  # 흰 종이에 검은 글씨, 다른 크기
    path = tmp_path / "digit.png"
    cv2.imwrite(str(path), big)
    result = ch11.run(ch11.main, ch11.Config, ["--predict", str(path), "--out-dir", str(trained_dir),
                                               "--device", "cpu"])
    saved = json.loads((trained_dir / "prediction.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(result))
    assert {"anomaly_score", "threshold", "anomalous", "normal_digit"} <= set(saved)
    assert saved["anomalous"] == (saved["anomaly_score"] > saved["threshold"])
    assert saved["normal_digit"] == 0 and isinstance(saved["anomalous"], bool)
    checkpoint = torch.load(trained_dir / "anomaly.pt", map_location="cpu", weights_only=True)
    assert saved["threshold"] == checkpoint["extra"]["threshold"]  # 학습 때 검증으로 정한 그 문턱값
    # 점수를 다시 계산: 같은 전처리 + anomaly.pt 의 모델
    from utils.data import vision

    detector = ch11.build_model(**checkpoint["model_args"])
    detector.load_state_dict(checkpoint["model"])
    pixels = ch11.to_unit_pixels(vision.read_image_as_mnist(path))
    expected = (ch11.reconstruct(detector, pixels, torch.device("cpu")) - pixels).pow(2).mean().item()
    assert saved["anomaly_score"] == pytest.approx(expected, rel=1e-5)
    assert (trained_dir / "prediction.png").exists()


@pytest.mark.parametrize("flags, words", [
    (["--normal-digit", "10"], "--normal-digit"),
    (["--normal-digit", "-1"], "--normal-digit"),
    (["--noise-std", "-0.1"], "--noise-std"),
    (["--noise-std", "nan"], "--noise-std"),
    (["--beta", "-1"], "--beta"),
    (["--threshold-quantile", "1"], "--threshold-quantile"),
])
def test_bad_flags_are_one_line(ch11, flags, words, tmp_path, capsys):
    err = one_line_exit(ch11, smoke_args(tmp_path, *flags), capsys)
    assert words in err
    assert not list(tmp_path.glob("*.pt"))  # 학습 전에 멈춤


def test_bad_predict_inputs_are_one_line(ch11, trained_dir, tmp_path, capsys):
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not an image", encoding="utf-8")
    for target, words in ((tmp_path, "폴더"), (not_image, "이미지"), (tmp_path / "missing.png", "없습니다")):
        err = one_line_exit(ch11, ["--predict", str(target), "--out-dir", str(trained_dir)], capsys)
        assert words in err, err
    # 다른 장의 체크포인트: best.pt 는 맞지만 anomaly.pt 의 주인이 다름
    other = tmp_path / "other"
    other.mkdir()
    for name in ("best.pt", "anomaly.pt"):
        checkpoint = torch.load(trained_dir / name, map_location="cpu", weights_only=True)
        checkpoint["chapter"] = "09_unet_segmentation" if name == "anomaly.pt" else checkpoint["chapter"]
        torch.save(checkpoint, other / name)
    err = one_line_exit(ch11, ["--predict", str(not_image), "--out-dir", str(other)], capsys)
    assert "09_unet_segmentation" in err
