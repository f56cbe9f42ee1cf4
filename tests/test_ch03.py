"""03장: 합성곱·풀링 손 계산, 출력 크기 공식, 잔차 블록(utils.models 와 같은 계산), 얼리기, 증강,
이미지 폴더 판정, 학습 확인(MLP 기준선 대비), --predict, 실험 도중 Ctrl+C 뒤 이어하기, 잘못된 입력."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import ROOT, load_chapter

from utils.data import color_images
from utils.data.color_images import color_shapes, is_image_folder, load_color_images, load_image_folder
from utils.models import ResidualBlock as SharedResidualBlock
from utils.models import conv_bn_relu
from utils.runtime import UserError
from utils.synthetic import SHAPE_CLASSES, make_color_shapes
from utils.training import load_trained_model

SCRIPT = ROOT / "03_cnn_image_classification.py"
SMOKE = ["--smoke", "--data", "offline", "--device", "cpu"]


@pytest.fixture(scope="module")
def mod():
    return load_chapter("03")


def run_chapter(mod, *argv):
    """명령줄과 같은 길(run → 플래그 → main)로, 이 프로세스 안에서 실행합니다 (새 파이썬보다 몇 초 빠름)."""
    return mod.run(mod.main, mod.Config, list(argv))


def exit_with_one_line(mod, capsys, *argv) -> str:
    """잘못된 입력: 종료 코드 2, stderr 에 '오류:' 한 줄, traceback 없음. 그 한 줄을 돌려줍니다."""
    with pytest.raises(SystemExit) as stop:
        run_chapter(mod, *argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("오류:") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------------
# 손 계산 ↔ PyTorch
# ---------------------------------------------------------------------------
def test_conv_by_hand_matches_course_numbers_and_f_conv2d(mod):
    x, k = mod.CONV_INPUT, mod.CONV_KERNEL
    stride1 = mod.conv2d_by_hand(x, k, stride=1)
    stride2 = mod.conv2d_by_hand(x, k, stride=2)
    assert stride1.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]  # 손으로 계산한 값
    assert stride2.tolist() == [[4, 4], [2, 4]]
    for stride, by_hand in ((1, stride1), (2, stride2)):
        assert torch.allclose(by_hand, F.conv2d(x.view(1, 1, 5, 5), k.view(1, 1, 3, 3), stride=stride)[0, 0])
    # 패딩이 있는 경우와 무작위 값도
    torch.manual_seed(0)
    image, kernel = torch.randn(7, 6), torch.randn(3, 3)
    for stride, padding in ((1, 1), (2, 1), (3, 2)):
        reference = F.conv2d(image.view(1, 1, 7, 6), kernel.view(1, 1, 3, 3), stride=stride, padding=padding)
        assert torch.allclose(mod.conv2d_by_hand(image, kernel, stride, padding), reference[0, 0], atol=1e-5)


def test_pooling_course_example(mod):
    x = mod.POOL_INPUT
    assert mod.pool2d_by_hand(x, 2, "max").tolist() == [[9, 7], [8, 6]]
    assert mod.pool2d_by_hand(x, 2, "avg").tolist() == [[4.25, 4.25], [4.25, 3.5]]
    assert torch.equal(mod.pool2d_by_hand(x, 2, "max"), F.max_pool2d(x.view(1, 1, 4, 4), 2)[0, 0])
    assert torch.allclose(mod.pool2d_by_hand(x, 2, "avg"), F.avg_pool2d(x.view(1, 1, 4, 4), 2)[0, 0])
    # 정사각형이 아닌 무작위 입력, 창 크기 3 도 (4x4·창 2 에서는 모양이 같아 숨는 실수를 잡도록)
    torch.manual_seed(0)
    image = torch.randn(6, 9)
    assert torch.equal(mod.pool2d_by_hand(image, 3, "max"), F.max_pool2d(image.view(1, 1, 6, 9), 3)[0, 0])
    assert torch.allclose(mod.pool2d_by_hand(image, 3, "avg"), F.avg_pool2d(image.view(1, 1, 6, 9), 3)[0, 0])


def test_padding_modes_on_small_matrix():
    small = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    assert F.pad(small, (1, 1, 1, 1), mode="reflect")[0, 0, 0].tolist() == [5, 4, 5, 6, 5]
    assert F.pad(small, (1, 1, 1, 1), mode="replicate")[0, 0, 0].tolist() == [1, 1, 2, 3, 3]
    assert F.pad(small, (1, 1, 1, 1))[0, 0, 0].tolist() == [0] * 5


@pytest.mark.parametrize("size,kernel,stride,padding", [(5, 3, 1, 0), (5, 3, 2, 0), (32, 3, 1, 1),
                                                        (32, 3, 2, 1), (28, 5, 1, 2), (227, 11, 4, 0)])
def test_output_size_formula(mod, size, kernel, stride, padding):
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)
    actual = conv(torch.zeros(1, 1, size, size)).shape[-1]
    assert mod.conv_output_size(size, kernel, stride, padding) == actual


def test_parameter_formulas(mod):
    assert mod.linear_parameters(196_608, 1000) == 196_608 * 1000 + 1000
    assert mod.conv_parameters(3, 64, 3) == 1792
    assert mod.conv_parameters(16, 32, 3) == mod.count_parameters(nn.Conv2d(16, 32, 3))
    assert mod.count_parameters(nn.Linear(5, 3)) == 18


# ---------------------------------------------------------------------------
# 모델: 모양, 잔차 블록, utils.models 의 같은 블록
# ---------------------------------------------------------------------------
def test_residual_block_shapes_and_shortcut(mod):
    x = torch.randn(2, 16, 32, 32)
    same = mod.ResidualBlock(16, 16)
    assert isinstance(same.shortcut, nn.Identity)
    assert same(x).shape == (2, 16, 32, 32)
    down = mod.ResidualBlock(16, 32, stride=2)
    assert isinstance(down.shortcut[0], nn.Conv2d) and down.shortcut[0].kernel_size == (1, 1)
    assert down(x).shape == (2, 32, 16, 16)
    # f(x) + x: 잔차 가지의 마지막 BN 을 0 으로 두면 블록은 ReLU(x) 가 됩니다
    nn.init.zeros_(same.residual[-1].weight)
    same.eval()
    with torch.no_grad():
        assert torch.allclose(same(x), F.relu(x))
        plain = mod.ResidualBlock(16, 16, skip=False)
        nn.init.zeros_(plain.residual[-1].weight)
        plain.eval()
        assert torch.count_nonzero(plain(x)) == 0  # 지름길이 없으면 신호가 사라짐


@pytest.mark.parametrize("in_channels,out_channels,stride", [(8, 8, 1), (8, 16, 2), (8, 16, 1)])
def test_chapter_blocks_compute_the_same_as_utils_models(mod, in_channels, out_channels, stride):
    """03장이 가르치는 블록과 06·09·10 장이 쓰는 utils.models 의 블록: 같은 가중치 → 같은 출력."""
    torch.manual_seed(0)
    ours = mod.ResidualBlock(in_channels, out_channels, stride)
    shared = SharedResidualBlock(in_channels, out_channels, stride)
    for module in ours.modules():  # BN 의 γ, β, 이동 평균이 기본값(1, 0) 이면 차이가 숨으므로 흩뜨림
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    shared.load_state_dict(ours.state_dict())  # 같은 이름·모양의 파라미터여야 통과
    x = torch.randn(3, in_channels, 12, 12)
    for train in (True, False):  # 학습 모드(배치 통계)와 평가 모드(이동 평균) 둘 다
        ours.train(train)
        shared.train(train)
        with torch.no_grad():
            assert torch.allclose(ours(x), shared(x), atol=1e-6)
    # VGG 블록의 앞 세 층(Conv→BN→ReLU)은 utils.models.conv_bn_relu 와 같은 층
    block = mod.conv_block(in_channels, out_channels)[:3].eval()
    reference = conv_bn_relu(in_channels, out_channels)
    reference.load_state_dict(block.state_dict())
    with torch.no_grad():
        assert torch.allclose(block(x), reference.eval()(x), atol=1e-6)


def test_models_output_shapes(mod):
    x = torch.randn(3, 3, 32, 32)
    for name in ("vgg", "resnet"):
        assert mod.build_model(name, 10)(x).shape == (3, 10)
    assert mod.build_model("resnet", 4, width=8, blocks_per_stage=2)(x).shape == (3, 4)
    assert mod.VGGNet(10).features(x).shape == (3, 64, 4, 4)  # 32 → 16 → 8 → 4
    assert mod.MLP(7)(x).shape == (3, 7)
    deep = mod.DeepNet(10, layers=20, skip=True)
    convs = sum(isinstance(m, nn.Conv2d) for m in deep.modules())
    assert convs + 1 == 20  # 층 수 = 합성곱 + 출력 FC
    assert deep(x).shape == (3, 10)


# ---------------------------------------------------------------------------
# 전이 학습: 얼리기 (무작위 가중치로)
# ---------------------------------------------------------------------------
def test_freezing_only_head_gets_gradients(mod):
    model = mod.make_transfer_model(5, weights=None)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 4])
    F.cross_entropy(model(x), y).backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {"fc.weight", "fc.bias"}
    assert mod.count_parameters(model) == 512 * 5 + 5
    before = model.conv1.weight.clone()  # 옵티마이저가 얼린 층을 바꾸지 않는지
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert torch.equal(before, model.conv1.weight)
    mod.unfreeze(model)  # 미세 조정: 모두 풀면 모든 파라미터에 기울기
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_pretrained_offline_skips_in_one_line(mod, capsys):
    data = color_shapes(0, 16, 8)
    assert mod.transfer_learning(data, device=torch.device("cpu"), config=mod.Config(data="offline")) == {}
    lines = [line for line in capsys.readouterr().out.splitlines() if "건너뜁니다" in line]
    assert len(lines) == 1 and "가중치" in lines[0]


# ---------------------------------------------------------------------------
# 데이터: 정규화, 증강, 검증 분할, 도형 데이터
# ---------------------------------------------------------------------------
def test_channel_stats_match_torch(mod):
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    mean, std = mod.channel_stats(images, chunk=7)
    x = images.double() / 255
    assert torch.allclose(mean.double(), x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(std.double(), x.std(dim=(0, 2, 3), unbiased=False), atol=1e-5)


def test_augmentation_keeps_shapes_and_labels(mod):
    batch = 64
    # 이미지마다 다른 상수 값(= 라벨 표시): 증강 뒤에도 각 이미지에는 자기 값과 패딩의 0 만 있어야 함
    values = torch.arange(1, batch + 1, dtype=torch.float32)
    x = values.view(batch, 1, 1, 1).expand(batch, 3, 32, 32).contiguous()
    out = mod.augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(batch):
        assert set(out[i].unique().tolist()) <= {0.0, values[i].item()}
        assert (out[i] == values[i]).float().mean() >= (24 / 32) ** 2 - 1e-6  # 최대 4+4 줄만 패딩
    # 각 결과는 패딩한 원본의 32x32 조각(그대로 또는 좌우 뒤집힘)이어야 함
    pattern = torch.randn(8, 3, 32, 32)
    out = mod.augment_batch(pattern, torch.Generator().manual_seed(0))
    padded = F.pad(pattern, (4, 4, 4, 4))
    flips = 0
    for i in range(8):
        crops = [padded[i, :, r:r + 32, c:c + 32] for r in range(9) for c in range(9)]
        plain = any(torch.equal(out[i], crop) for crop in crops)
        flipped = any(torch.equal(out[i], crop.flip(2)) for crop in crops)
        assert plain or flipped
        flips += flipped
    assert 0 < flips < 8  # 약 절반이 뒤집힘 (seed 0 에서)
    # 같은 generator 상태 → 같은 증강 (이어하기가 같은 숫자를 내는 이유)
    assert torch.equal(mod.augment_batch(pattern, torch.Generator().manual_seed(0)), out)


def test_validation_split_is_disjoint_and_independent_of_global_rng(mod):
    data = color_shapes(0, 200, 10)
    torch.manual_seed(1)
    first, (x_val, y_val) = mod.split_validation(data, 0.1, seed=5)
    torch.manual_seed(2)  # 전역 RNG 가 달라도 같은 분할
    second, (x_val2, _) = mod.split_validation(data, 0.1, seed=5)
    assert torch.equal(x_val, x_val2) and torch.equal(first.x_train, second.x_train)
    assert len(y_val) == 20 and len(first.y_train) == 180
    flat = lambda t: {bytes(image.numpy()) for image in t}
    assert not flat(x_val) & flat(first.x_train)  # 검증 이미지는 학습에 없음
    assert torch.equal(first.x_test, data.x_test)


def test_color_shapes_deterministic_balanced_and_fast():
    import time

    started = time.perf_counter()
    images, labels = make_color_shapes(2000, seed=3)
    assert time.perf_counter() - started < 20  # 부하가 있어도 넉넉한 한도 (조용한 기계에선 1초 미만)
    again, labels_again = make_color_shapes(2000, seed=3)
    assert images.dtype == torch.uint8 and images.shape == (2000, 3, 32, 32)
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    assert torch.bincount(labels).tolist() == [200] * len(SHAPE_CLASSES)
    assert not torch.equal(images, make_color_shapes(2000, seed=4)[0])
    assert 40 < images.float().std() < 120  # 한 색이 아닌 다양한 이미지


def test_confusion_matrix_matches_sklearn(mod):
    from sklearn.metrics import confusion_matrix

    torch.manual_seed(0)
    truth, predictions = torch.randint(0, 4, (100,)), torch.randint(0, 4, (100,))
    expected = confusion_matrix(truth.numpy(), predictions.numpy(), labels=range(4))
    assert np.array_equal(mod.confusion_matrix(predictions, truth, 4).numpy(), expected)


def test_evaluate_matches_cross_entropy_and_accuracy(mod):
    torch.manual_seed(0)
    model = mod.MLP(3, hidden_size=8, image_size=4)
    images, labels = torch.randint(0, 256, (700, 3, 4, 4), dtype=torch.uint8), torch.randint(0, 3, (700,))
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    result = mod.evaluate(model, images, labels, mean=mean, std=std, device=torch.device("cpu"))
    with torch.no_grad():
        logits = model((images.float() / 255 - 0.5) / 0.25)
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())


# ---------------------------------------------------------------------------
# 이미지 폴더: 클래스 하위 폴더에 이미지가 있을 때만 (issue 9, 5번)
# ---------------------------------------------------------------------------
def _write_folder(root, classes=("cat", "dog"), per_class=12, mixed_sizes=True):
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (40 + 7 * i, 50 + 3 * i) if mixed_sizes else (32, 32)
            image = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
            image[..., label % 3] += 150  # 클래스마다 다른 색이 강함 → 배울 수 있음
            suffix = ".png" if i % 2 else ".jpg"
            cv2.imwrite(str(root / name / f"{i}{suffix}"), image)


def _write_tutorial_data_dir(root):
    """01·02 장이 내려받은 뒤의 data/ 와 같은 모양: 하위 폴더는 있지만 이미지는 없음."""
    for folder, name in (("MNIST/raw", "train-images-idx3-ubyte.gz"),
                         ("FashionMNIST/raw", "t10k-labels-idx1-ubyte.gz"), ("sklearn", "digits.npz")):
        (root / folder).mkdir(parents=True)
        (root / folder / name).write_bytes(b"\x1f\x8b not an image")


def test_image_folder_needs_images_in_class_subfolders(tmp_path):
    _write_tutorial_data_dir(tmp_path / "data")
    assert not is_image_folder(tmp_path / "data")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert not is_image_folder(tmp_path / "empty")
    assert not is_image_folder(tmp_path / "missing")
    _write_folder(tmp_path / "photos", per_class=2)
    assert is_image_folder(tmp_path / "photos")
    _write_folder(tmp_path / "split" / "train", per_class=2)
    assert is_image_folder(tmp_path / "split")


def test_tutorial_data_dir_falls_back_in_one_line_or_fails_clearly(tmp_path, monkeypatch, capsys):
    _write_tutorial_data_dir(tmp_path / "data")
    monkeypatch.setattr(color_images, "try_download", lambda fn: (None, "network unreachable (test)"))
    monkeypatch.setattr(color_images, "SHAPES_TRAIN", 40)  # 대체 데이터를 작게 (빠르게)
    monkeypatch.setattr(color_images, "SHAPES_TEST", 20)
    data = load_color_images("auto", str(tmp_path / "data"), smoke=False, seed=0)
    assert data.name.startswith("procedural colour shapes") and len(data.y_train) == 40
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("이미지 폴더가 아닙니다" in line and "MNIST" in line for line in lines), lines
    assert len(lines) == 2  # '이미지 폴더 아님 → CIFAR-10 을 찾음' + '도형 데이터로 대신함'
    with pytest.raises(UserError, match="이미지 폴더가 아닙니다") as error:
        load_color_images("real", str(tmp_path / "data"), smoke=False, seed=0)
    assert "CIFAR-10" in str(error.value) and "\n" not in str(error.value)


def test_image_folder_mixed_sizes_and_split(tmp_path):
    _write_folder(tmp_path / "photos")
    (tmp_path / "photos" / "cat" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path / "photos", seed=0)
    assert data.classes == ["cat", "dog"]
    assert data.x_train.shape[1:] == (3, 32, 32) and data.x_train.dtype == torch.uint8
    assert len(data.y_train) + len(data.y_test) == 24
    assert sorted(torch.bincount(data.y_test).tolist()) == [2, 3]  # 클래스 비율을 지킨 80:20
    _write_folder(tmp_path / "split" / "train", per_class=4)
    _write_folder(tmp_path / "split" / "test", per_class=2)
    split = load_image_folder(tmp_path / "split", seed=0)
    assert (len(split.y_train), len(split.y_test)) == (8, 4)
    # cv2.imwrite 는 BGR 순서: 0번(B)을 강하게 쓴 cat 이미지를 RGB 로 읽으면 2번 채널이 강해야 함
    cats = split.x_train[split.y_train == 0].float()
    assert cats[:, 2].mean() > cats[:, 0].mean() + 100


def test_image_folder_errors(tmp_path):
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.jpg").write_text("text saved as .jpg")
    with pytest.raises(UserError, match="이미지를 찾지 못했습니다"):
        load_image_folder(tmp_path / "broken", seed=0)
    _write_folder(tmp_path / "one", classes=("only",), per_class=3)
    with pytest.raises(UserError, match="클래스가 1개"):
        load_image_folder(tmp_path / "one", seed=0)


# ---------------------------------------------------------------------------
# 학습 확인: 같은 데이터·같은 예산에서 CNN 이 MLP 기준선을 분명히 이김
# ---------------------------------------------------------------------------
def test_cnn_beats_mlp_baseline_by_a_margin(mod):
    """도형 2,000장, 3 epoch, 배치 32: VGG(폭 8, OneCycle SGD)가 MLP 기준선(Adam)보다 시험 정확도 15점 이상.

    도형의 위치가 제각각이라 픽셀을 펴는 MLP 는 우연(0.10) 근처에 머물고, CNN 은 같은 필터를 모든 위치에
    써서 빨리 배웁니다. 측정(seed 0, CPU 1스레드, 약 6초): VGG 0.388, MLP 0.154 → 차이 0.23.
    """
    data = color_shapes(seed=0, train_size=2000, test_size=500)
    mean, std = mod.channel_stats(data.x_train)
    inputs = {"mean": mean, "std": std, "device": torch.device("cpu")}
    config = mod.Config(epochs=3, batch_size=32, mlp_epochs=3)
    torch.manual_seed(0)
    model = mod.build_model("vgg", 10, width=8).to(memory_format=torch.channels_last)
    optimizer, scheduler = mod.make_optimizer(model, config, epochs=3, steps_per_epoch=63)  # ⌈2000/32⌉
    generator = torch.Generator().manual_seed(0)
    losses = [mod.train_one_epoch(model, data, optimizer, scheduler, None, generator=generator, **inputs,
                                  batch_size=32, augment=False, amp=False, epoch=epoch)
              for epoch in (1, 2, 3)]
    cnn = mod.evaluate(model, data.x_test, data.y_test, **inputs)
    mlp = mod.mlp_baseline(data, **inputs, config=config, cnn_accuracy=cnn["accuracy"])
    assert losses[-1] < losses[0]
    assert cnn["accuracy"] > mlp["mlp_test_accuracy"] + 0.15, (cnn, mlp)
    assert mlp["cnn_minus_mlp"] == pytest.approx(cnn["accuracy"] - mlp["mlp_test_accuracy"])


def test_study_numbers_do_not_depend_on_what_ran_before(mod, tmp_path):
    """부록 실험은 자기 seed 로 시작: 앞에서 전역 RNG 를 얼마나 썼든 같은 숫자."""
    data = color_shapes(seed=0, train_size=64, test_size=32)
    mean, std = mod.channel_stats(data.x_train)
    inputs = {"mean": mean, "std": std, "device": torch.device("cpu")}
    config = mod.Config(smoke=True, out_dir=str(tmp_path), depth_layers=10, mlp_epochs=1)
    results = []
    for burn in (0, 1000):  # 실험마다 그 앞에서 다른 양의 전역 난수를 써 둠
        torch.rand(burn)
        mlp = mod.mlp_baseline(data, **inputs, config=config, cnn_accuracy=0.5)
        torch.rand(burn)
        results.append((mlp, mod.depth_study(data, **inputs, config=config, out_dir=tmp_path)))
    assert results[0] == results[1]


# ---------------------------------------------------------------------------
# 실제로 돌려 보기: 실험 도중 Ctrl+C → --resume, 이미지 폴더 → --predict
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_run(mod, tmp_path_factory):
    """끊지 않은 --smoke 실행 한 번 (아래 여러 테스트가 함께 씀): (metrics, 출력 폴더)."""
    out = tmp_path_factory.mktemp("smoke")
    return run_chapter(mod, *SMOKE, "--out-dir", str(out)), out


def test_interrupt_during_study_then_resume_gives_same_metrics(mod, smoke_run, tmp_path, monkeypatch):
    """학습이 끝난 뒤 깊이 실험 도중 Ctrl+C(KeyboardInterrupt) → 종료 코드 130 → --resume: 같은 metrics.

    이어하기는 학습을 건너뛰고(last.pt 가 마지막 epoch) best.pt 로 평가한 뒤 실험만 다시 합니다.
    """
    uninterrupted, base = smoke_run
    original_progress = mod.training.progress

    def ctrl_c_in_depth_study(iterable, desc, total=None):
        if desc.startswith("study depth plain-32"):
            raise KeyboardInterrupt
        return original_progress(iterable, desc=desc, total=total)

    monkeypatch.setattr(mod.training, "progress", ctrl_c_in_depth_study)
    with pytest.raises(SystemExit) as stop:
        run_chapter(mod, *SMOKE, "--out-dir", str(tmp_path))
    assert stop.value.code == 130
    assert not (tmp_path / "metrics.json").exists()
    monkeypatch.setattr(mod.training, "progress", original_progress)
    resumed = run_chapter(mod, *SMOKE, "--out-dir", str(tmp_path), "--resume")
    assert resumed == uninterrupted
    read = lambda folder: json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert read(tmp_path) == read(base)
    for name in ("filters.png", "feature_maps.png", "depth_comparison.png", "confusion_matrix.png",
                 "predictions.png", "history.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_test_scores_come_from_best_checkpoint(mod, smoke_run):
    """시험 점수 = best.pt(검증 손실이 가장 낮은 epoch)의 가중치로 계산한 값 (--predict 와 같은 가중치)."""
    metrics, out = smoke_run
    config, cpu = mod.Config(device="cpu", out_dir=str(out)), torch.device("cpu")
    best, checkpoint = load_trained_model(out / "best.pt", mod.build_model, config, cpu)
    last, last_checkpoint = load_trained_model(out / "last.pt", mod.build_model, config, cpu)
    rows = last_checkpoint["history"]
    assert checkpoint["epoch"] == min(rows, key=lambda row: row["val_loss"])["epoch"]
    assert checkpoint["epoch"] < last_checkpoint["epoch"]  # smoke 에서는 best ≠ last: 아래 비교가 뜻이 있음
    data = load_color_images("offline", "data", smoke=True, seed=42)
    extra = checkpoint["extra"]
    inputs = {"mean": torch.tensor(extra["mean"]), "std": torch.tensor(extra["std"]), "device": cpu}
    from_best = mod.evaluate(best, data.x_test, data.y_test, **inputs)["loss"]
    from_last = mod.evaluate(last, data.x_test, data.y_test, **inputs)["loss"]
    assert metrics["test_loss"] == pytest.approx(from_best)
    assert metrics["test_loss"] != pytest.approx(from_last)


def test_resume_refuses_other_epochs_because_one_cycle_is_fixed(mod, smoke_run, capsys):
    """OneCycle 의 총 걸음 수는 --epochs 로 정해짐: --epochs 를 바꾼 이어하기는 한 줄로 거절."""
    _, out = smoke_run
    error = exit_with_one_line(mod, capsys, *SMOKE, "--out-dir", str(out), "--resume", "--epochs", "5")
    assert "epochs: 0 → 5" in error  # 저장된 --epochs(기본 0 = 예산, 도형이면 8바퀴) → 지금 5


def test_image_folder_end_to_end_and_predict(mod, tmp_path, capsys):
    _write_folder(tmp_path / "photos", per_class=16)
    out = tmp_path / "out"
    metrics = run_chapter(mod, "--data-dir", str(tmp_path / "photos"), "--epochs", "4", "--mlp-epochs", "0",
                          "--depth-steps", "0", "--batch-size", "8", "--device", "cpu", "--out-dir", str(out))
    record = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert record["data"].startswith("image folder photos")
    assert metrics["test_accuracy"] > 0.8  # 색이 다른 두 클래스: 쉽게 배움
    capsys.readouterr()

    # --predict: 학습 플래그(--batch-size 등)를 다시 주지 않아도 best.pt 만으로
    for true_class, index in (("cat", 2), ("dog", 3)):
        image_path = tmp_path / "photos" / true_class / f"{index}{'.png' if index % 2 else '.jpg'}"
        result = run_chapter(mod, "--predict", str(image_path), "--device", "cpu", "--out-dir", str(out))
        saved = json.loads((out / "prediction.json").read_text(encoding="utf-8"))
        assert saved == json.loads(json.dumps(result))
        assert saved["prediction"] == true_class and saved["probability"] > 0.5, saved
        assert saved["warning"] is None  # 확신이 높으면 경고 없음
        # 같은 확률을 손으로: cv2 로 읽기 → BGR→RGB → 32x32 → 학습 세트 평균·표준편차로 정규화 → softmax
        model, checkpoint = load_trained_model(out / "best.pt", mod.build_model, mod.Config(out_dir=str(out)),
                                               torch.device("cpu"))
        bgr = cv2.resize(cv2.imread(str(image_path)), (32, 32), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1).float().unsqueeze(0) / 255
        mean, std = (torch.tensor(checkpoint["extra"][k]).view(1, 3, 1, 1) for k in ("mean", "std"))
        with torch.no_grad():
            probabilities = model((x - mean) / std).softmax(1)[0]
        expected = checkpoint["extra"]["classes"][int(probabilities.argmax())]
        assert saved["prediction"] == expected
        assert saved["probability"] == pytest.approx(probabilities.max().item(), abs=1e-5)
        assert [r["class"] for r in saved["top"]][0] == saved["prediction"]
    assert (out / "prediction.png").stat().st_size > 1000

    # --predict 의 잘못된 입력: 한 줄 + 종료 코드 2
    assert "폴더" in exit_with_one_line(mod, capsys, "--predict", str(tmp_path / "photos"),
                                      "--out-dir", str(out))
    not_image = tmp_path / "model.txt"
    not_image.write_text("hello")
    assert "이미지로 읽을 수 없습니다" in exit_with_one_line(mod, capsys, "--predict", str(not_image),
                                                            "--out-dir", str(out))
    assert "없습니다" in exit_with_one_line(mod, capsys, "--predict", str(tmp_path / "nope.png"),
                                         "--out-dir", str(out))


# ---------------------------------------------------------------------------
# 잘못된 입력: 한 줄 오류, 종료 코드 2, 학습 전에
# ---------------------------------------------------------------------------
def test_bad_inputs_give_one_line_before_training(mod, tmp_path, capsys):
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.jpg").write_text("text saved as .jpg")
    error = exit_with_one_line(mod, capsys, "--data-dir", str(tmp_path / "broken"), "--device", "cpu",
                               "--out-dir", str(tmp_path / "o1"))
    assert "이미지를 찾지 못했습니다" in error
    _write_folder(tmp_path / "one", classes=("only",), per_class=2)
    error = exit_with_one_line(mod, capsys, "--data-dir", str(tmp_path / "one"), "--device", "cpu",
                               "--out-dir", str(tmp_path / "o2"))
    assert "클래스가 1개" in error
    assert not (tmp_path / "o1" / "last.pt").exists()  # 학습을 시작하기 전에 멈춤
    # --predict: best.pt 가 없으면 입력과 상관없이 그 한 줄
    assert "best.pt" in exit_with_one_line(mod, capsys, "--predict", str(tmp_path / "x.png"),
                                           "--out-dir", str(tmp_path / "o3"))
    for flag, value in (("--hidden-size", "0"), ("--dropout", "1.0"), ("--val-fraction", "0.7"),
                        ("--depth-layers", "11"), ("--mlp-epochs", "-1"), ("--transfer-size", "16")):
        # --smoke: 검사가 빠져도 오래 학습하지 않고 곧 끝나 (종료 코드 0) 테스트가 빨리 실패하도록
        assert flag in exit_with_one_line(mod, capsys, *SMOKE, flag, value, "--out-dir", str(tmp_path / "o4"))


def test_budget_is_images_seen_not_epochs(mod):
    """도형 18,000장은 8바퀴 그대로, 300장짜리 폴더는 같은 이미지 수만큼 (480바퀴), --epochs 는 정확히."""
    assert mod.training_length(mod.Config(), 18_000) == (8, None)
    assert mod.training_length(mod.Config(), 300) == (480, None)
    assert mod.training_length(mod.Config(), 45_000) == (4, None)  # CIFAR-10 학습 분할
    assert mod.training_length(mod.Config(epochs=2), 300) == (2, None)
    assert mod.training_length(mod.Config(smoke=True), 300) == (3, 1)
