"""07장 GAN: 처음부터 만든 조각을 기준(라이브러리·손 계산)과 맞추고, 짧은 학습이 실제로 배우는지 확인."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import SHARED_DATA, load_chapter
from scipy.linalg import sqrtm


@pytest.fixture(scope="module")
def ch07():
    return load_chapter("07")


def one_line_exit(module, argv, capsys) -> str:
    """run(main, Config, argv) 가 종료 코드 2 와 한 줄 오류로 끝나는지. 그 줄을 돌려줌."""
    with pytest.raises(SystemExit) as exit_info:
        module.run(module.main, module.Config, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- 2. 모델: 모양과 초기화 ------------------------------------------------------------------------
@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(ch07, image_size, channels):
    torch.manual_seed(0)
    gan = ch07.build_model(image_size=image_size, channels=channels, latent_dim=16, width=8, loss="gan")
    images = gan.generator(torch.randn(5, 16))
    assert images.shape == (5, channels, image_size, image_size)
    assert images.min() >= -1 and images.max() <= 1  # Tanh: 실제 데이터와 같은 [-1, 1]
    assert gan.discriminator(images).shape == (5,)  # 이미지 하나에 로짓 하나
    # 층마다 해상도가 정확히 두 배: 4 → 8 → … → image_size (docstring 의 모양 주석과 같음)
    sizes = [shape[-1] for _, shape in ch07.layer_shapes(gan.generator.net, torch.randn(2, 16, 1, 1))]
    assert sizes == [4 * 2 ** k for k in range(len(sizes))] and sizes[-1] == image_size
    # DCGAN 초기화 N(0, 0.02)
    convolutions = [m for m in gan.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convolutions])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002


def test_unsupported_image_size(ch07, capsys, tmp_path):
    with pytest.raises(ValueError, match="32, 64"):
        ch07.stage_count(48)
    err = one_line_exit(ch07, ["--image-size", "48", "--out-dir", str(tmp_path)], capsys)
    assert "--image-size" in err and "32, 64" in err


# --- 3. 손실: BCE-with-logits, 기울기 벌점, 비평가 -----------------------------------------------------
def test_bce_with_logits_from_scratch(ch07):
    logits = torch.tensor([-40.0, -3.0, 0.0, 2.5, 40.0])
    for target in (0.0, 1.0):
        expected = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
        assert torch.allclose(ch07.bce_with_logits(logits, target), expected, atol=1e-6)
    # 왜 로짓인가: 시그모이드를 따로 거치면 σ(40) = 1.0 (float32) → BCE(1.0, 0) 이 −log 0 을 100 으로 자름
    naive = F.binary_cross_entropy(torch.sigmoid(torch.tensor([40.0])), torch.zeros(1))
    assert naive.item() == pytest.approx(100.0)
    assert ch07.bce_with_logits(torch.tensor([40.0]), 0.0).item() == 40.0


def test_gradient_penalty_matches_hand_computation(ch07):
    """작은 비평가 D(x) = Σ x² (표본마다): ∇D(x̂) = 2x̂ → 벌점 = mean((2‖x̂‖ − 1)²), ‖·‖ 는 (C, H, W) 전체."""
    real, fake = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    critic = lambda x: (x ** 2).sum(dim=(1, 2, 3))
    torch.manual_seed(7)
    penalty = ch07.gradient_penalty(critic, real, fake)
    torch.manual_seed(7)
    epsilon = torch.rand(4, 1, 1, 1)  # 함수와 같은 순서로 같은 난수
    mixed = epsilon * real + (1 - epsilon) * fake
    expected = ((2 * mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert torch.allclose(penalty, expected, rtol=1e-5)
    # 선형 비평가 w·x: 기울기는 어디서나 w → 벌점 = (‖w‖ − 1)², 그리고 벌점이 비평가 가중치로 미분됨
    linear = nn.Sequential(nn.Flatten(), nn.Linear(18, 1))
    penalty = ch07.gradient_penalty(linear, real, fake)
    assert torch.allclose(penalty, (linear[1].weight.norm() - 1) ** 2, rtol=1e-5)
    penalty.backward()
    assert linear[1].weight.grad is not None and linear[1].weight.grad.abs().sum() > 0


def test_critic_has_no_batchnorm_and_scores_samples_independently(ch07):
    torch.manual_seed(0)
    critic = ch07.build_model(image_size=32, channels=1, latent_dim=8, width=8, loss="wgan-gp").discriminator
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    dcgan = ch07.build_model(image_size=32, channels=1, latent_dim=8, width=8, loss="gan").discriminator
    assert any(isinstance(m, nn.BatchNorm2d) for m in dcgan.modules())
    # 기울기 벌점이 말이 되려면 표본 하나의 점수가 배치의 다른 표본과 무관해야 함 (학습 모드에서도)
    critic.train()
    images = torch.randn(6, 1, 32, 32)
    assert torch.allclose(critic(images)[:2], critic(images[:2]), atol=1e-5)


def test_generator_step_raises_d_of_g_z(ch07):
    """D 를 먼저 조금 학습해 가짜를 알아보게 한 뒤 고정하고, G 만 몇 걸음: D(G(z)) 가 올라야 함.

    generator_loss 의 부호나 목표(1 대신 0)가 틀리면 G 가 반대로 움직여 D(G(z)) 가 내려갑니다.
    """
    torch.manual_seed(0)
    real = torch.rand(32, 1, 32, 32) * 2 - 1  # '진짜' = 균등 잡음 이미지 (G 의 초기 출력 ≈ 0 과 다름)
    for loss in ("gan", "wgan-gp"):
        gan = ch07.build_model(image_size=32, channels=1, latent_dim=16, width=8, loss=loss)
        z = torch.randn(32, 16)
        optimizer_d = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
        for _ in range(10):
            fake = gan.generator(z).detach()
            d_loss = ch07.discriminator_loss(gan.discriminator(real), gan.discriminator(fake), loss)
            optimizer_d.zero_grad()
            d_loss.backward()
            optimizer_d.step()
        gan.discriminator.requires_grad_(False)  # D 고정
        to_score = torch.sigmoid if loss == "gan" else (lambda scores: scores)
        with torch.no_grad():
            before = to_score(gan.discriminator(gan.generator(z))).mean().item()
        optimizer_g = torch.optim.Adam(gan.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
        for _ in range(10):
            g_loss = ch07.generator_loss(gan.discriminator(gan.generator(z)), loss)
            optimizer_g.zero_grad()
            g_loss.backward()
            optimizer_g.step()
        with torch.no_grad():
            after = to_score(gan.discriminator(gan.generator(z))).mean().item()
        margin = 0.2 if loss == "gan" else 0.5 * abs(before)
        assert after > before + margin, (loss, before, after)


# --- 4. 평가: 프레셰 거리와 클래스 통계 ---------------------------------------------------------------
def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """독립 계산: pytorch-fid 와 같은 scipy.linalg.sqrtm 공식."""
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = sqrtm(cov_a @ cov_b).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def test_frechet_distance(ch07):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=generator) @ torch.randn(6, 6, generator=generator)  # 상관 있는 특징
    b = torch.randn(300, 6, generator=generator) * torch.linspace(0.5, 2, 6) + 0.3
    assert abs(ch07.frechet_distance(a, a)) < 1e-6  # 자기 자신과 ≈ 0
    shifts = [ch07.frechet_distance(a, a + shift) for shift in (0.5, 1.0, 2.0)]
    assert shifts == pytest.approx([6 * 0.25, 6 * 1.0, 6 * 4.0], rel=1e-6)  # 평균만 옮기면 ‖이동‖²
    expected = scipy_frechet(a.double().numpy(), b.double().numpy())
    assert ch07.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert ch07.frechet_distance_scipy(a, b) == pytest.approx(expected, rel=1e-9)


def test_class_statistics(ch07):
    uniform = ch07.class_statistics(torch.arange(10).repeat(10), 10)
    assert uniform["class_entropy"] == pytest.approx(np.log(10)) and uniform["min_class_fraction"] == 0.1
    collapsed = ch07.class_statistics(torch.tensor([3] * 95 + [1] * 5), 10)
    assert collapsed["classes_covered"] == 2 and collapsed["min_class_fraction"] == 0.0
    assert collapsed["class_entropy"] == pytest.approx(-(0.95 * np.log(0.95) + 0.05 * np.log(0.05)))


def test_toy_ring_scoring(ch07):
    centres = ch07.toy_centres()
    on_modes = centres.repeat_interleave(30, dim=0)  # 모드마다 30개, 정확히 중심
    assert ch07.score_ring(on_modes) == (8, 1.0)
    outward = centres / centres.norm(dim=1, keepdim=True)  # (8, 2) 고리 바깥 방향 단위 벡터
    near = (centres + 2.9 * ch07.TOY_SIGMA * outward).repeat_interleave(30, dim=0)  # 3σ 바로 안
    far = (centres + 3.1 * ch07.TOY_SIGMA * outward).repeat_interleave(30, dim=0)  # 3σ 바로 밖
    assert ch07.score_ring(near) == (8, 1.0) and ch07.score_ring(far) == (0, 0.0)
    assert ch07.score_ring(on_modes[: 8 * 30 - 11])[0] == 7  # 마지막 모드에 19개 < 20 → 놓친 모드
    collapsed = torch.cat([centres[:3].repeat_interleave(30, dim=0), torch.zeros(10, 2)])  # 3개 모드 + 원점
    modes, quality = ch07.score_ring(collapsed)
    assert modes == 3 and quality == pytest.approx(90 / 100)


# --- 1. 데이터: 이미지 폴더와 실제 MNIST ---------------------------------------------------------------
def test_image_folder(tmp_path, capsys, ch07):
    from PIL import Image

    from utils.data.images import load_image_folder

    for name, color in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / "faces" / name).mkdir(parents=True)
        for k in range(3):  # 가로로 긴 사진: 가운데 자르기 뒤 정사각형
            Image.new("RGB", (60 + k, 40), color).save(tmp_path / "faces" / name / f"{k}.png")
    (tmp_path / "faces" / "cats" / "broken.jpg").write_bytes(b"not an image")
    x, y, classes = load_image_folder(tmp_path / "faces", 32, seed=0, max_images=100)
    assert x.shape == (6, 3, 32, 32) and classes == ["cats", "dogs"] and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))  # 빨강 → [-1, 1] 범위
    assert "1개를 건너뛰었습니다" in capsys.readouterr().out

    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    err = one_line_exit(ch07, ["--dataset", "folder", "--data", "real", "--data-dir", str(tmp_path / "empty"),
                               "--out-dir", str(tmp_path / "out")], capsys)
    assert "이미지 파일이 없습니다" in err


@pytest.mark.skipif(not (SHARED_DATA / "mnist" / "MNIST" / "raw").is_dir(), reason="../shared/data 없음")
def test_real_mnist_is_padded_to_32(ch07):
    from utils.data.images import load_gan_images

    data = load_gan_images("mnist", "real", str(SHARED_DATA / "mnist"), smoke=False, seed=0, size=32,
                           val_fraction=0.1)
    assert data.name == "MNIST (real)" and data.x_train.shape[1:] == (1, 32, 32)
    assert len(data.x_train) + len(data.x_val) == 60000 and len(data.x_test) == 10000
    assert data.x_train.min() == -1 and data.x_train.max() == 1
    assert (data.x_train[:100, :, :2] == -1).all()  # 28 → 32 여백은 검은 배경


# --- 학습 확인, --predict --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_run(ch07, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ch07_run")
    argv = ["--data", "offline", "--device", "cpu", "--epochs", "3", "--width", "16",
            "--classifier-steps", "40", "--toy-steps", "0", "--eval-samples", "300",
            "--out-dir", str(out_dir)]
    metrics = ch07.run(ch07.main, ch07.Config, argv)
    return out_dir, metrics


def test_short_run_learns(ch07, short_run):
    """digits 3 epoch(폭 16, G 약 60걸음)만 학습한 best.pt 가 학습 전 생성기보다 실제 이미지에 가까움.

    이렇게 짧으면 숫자 모양은 아직 흐릿한 덩어리라 거리는 조금만 줄어듭니다 (측정: 분류기 특징 FD 와
    8x8 평균 풀링 픽셀 FD 모두 학습 전의 0.92배). 그래서 여유는 3%: G 를 갱신하지 않으면 실패합니다.
    제대로 된 학습 확인(FD ≤ 0.2배, 10 클래스)은 기본 실행의 완료 기준(benchmarks)이 합니다.
    """
    from utils.data.images import load_gan_images

    out_dir, metrics = short_run
    assert metrics["classifier_accuracy"] > 0.9
    assert metrics["fd"] < 0.97 * metrics["fd_untrained"] and metrics["fd_real"] < metrics["fd"], metrics
    data = load_gan_images("mnist", "offline", "data", smoke=False, seed=42, size=32, val_fraction=0.1)
    cpu = torch.device("cpu")
    gan, checkpoint = ch07.training.load_trained_model(out_dir / "best.pt", ch07.build_model,
                                              ch07.Config(out_dir=str(out_dir)), cpu)
    torch.manual_seed(0)
    untrained = ch07.build_model(**checkpoint["model_args"])
    noise = torch.randn(300, untrained.latent_dim, generator=torch.Generator().manual_seed(0))
    pixels = lambda images: F.avg_pool2d(images, 4).flatten(1)  # (N, 1, 32, 32) → (N, 64)
    real = pixels(data.x_test)
    fd_trained = ch07.frechet_distance(pixels(ch07.generate(gan.generator, noise, cpu)), real)
    fd_untrained = ch07.frechet_distance(pixels(ch07.generate(untrained.generator, noise, cpu)), real)
    assert fd_trained < 0.97 * fd_untrained, (fd_trained, fd_untrained)
    record = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert {"min_class_fraction", "class_entropy", "fd", "fd_untrained", "fd_real"} <= set(record["metrics"])
    assert (out_dir / "training.gif").stat().st_size > 1000
    assert (out_dir / "epochs" / "epoch_003.png").exists()


def test_predict_writes_images(ch07, short_run, capsys):
    out_dir, _ = short_run
    ch07.run(ch07.main, ch07.Config, ["--predict", "5", "--out-dir", str(out_dir), "--device", "cpu"])
    result = json.loads((out_dir / "prediction.json").read_text(encoding="utf-8"))
    assert result["count"] == 5 and len(result["images"]) == 5
    assert all((out_dir / image["file"]).is_file() for image in result["images"])
    assert (out_dir / "prediction.png").is_file()


def test_predict_bad_inputs(ch07, capsys, tmp_path):
    err = one_line_exit(ch07, ["--predict", "4", "--out-dir", str(tmp_path)], capsys)
    assert "best.pt" in err
    err = one_line_exit(ch07, ["--predict", "-3", "--out-dir", str(tmp_path)], capsys)
    assert "--predict" in err


# --- 학습 예산: epoch 수가 아니라 본 이미지 수 (DESIGN.md "Your own data") -----------------------------
def test_budget_keeps_digits_at_100_epochs_and_real_mnist_short(ch07):
    """같은 예산이 digits(1,293장)에서는 지금까지의 100바퀴, MNIST(54,000장)에서는 3바퀴 (2시간이 아님)."""
    config = ch07.Config()
    assert ch07.training_epochs(config, 1293) == 100
    assert ch07.training_epochs(config, 54_000) == 3
    assert ch07.training_epochs(config, 20_000) == 7  # 이미지 폴더 최대 2만 장
    assert ch07.training_epochs(ch07.Config(epochs=5), 54_000) == 5  # --epochs 는 예산 대신 정확히
    assert ch07.training_epochs(ch07.Config(smoke=True), 1293) == 3


def test_summary_warns_when_the_generator_did_not_learn(ch07, tmp_path, capsys):
    """학습 전과 같은 FD 면 '쓸 수 있는 모델이 아님' 경고 한 줄, 100분의 1 이면 경고 없음."""
    test = {"fd": 1300.0, "fd_untrained": 1400.0, "fd_real": 4.0, "min_class_fraction": 0.0,
            "class_entropy": 0.0}
    ch07.summarize(test, 0.99, 1, {}, tmp_path)
    assert "경고:" in capsys.readouterr().out
    trained = {**test, "fd": 13.0, "min_class_fraction": 0.07, "class_entropy": 2.29}
    ch07.summarize(trained, 0.99, 1, {}, tmp_path)
    assert "경고:" not in capsys.readouterr().out
