"""03장: 합성곱·풀링 손 계산, 출력 크기 공식, 잔차 블록, 얼리기, 증강, 이미지 폴더, 학습 확인, 잘못된 입력."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import ROOT, load_chapter, run_script

from utils.data.color_images import ColorImages, color_shapes, load_image_folder
from utils.runtime import UserError
from utils.synthetic import SHAPE_CLASSES, make_color_shapes

SCRIPT = ROOT / "03_cnn_image_classification.py"


@pytest.fixture(scope="module")
def mod():
    return load_chapter("03")


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
    assert mod.conv_output_size(5, 3, 1) == 3 and mod.conv_output_size(5, 3, 2) == 2  # 강의의 두 값


def test_parameter_formulas(mod):
    assert mod.linear_parameters(196_608, 1000) == 196_608 * 1000 + 1000
    assert mod.conv_parameters(3, 64, 3) == 1792
    assert mod.conv_parameters(16, 32, 3) == sum(p.numel() for p in nn.Conv2d(16, 32, 3).parameters())


# ---------------------------------------------------------------------------
# 모델 모양
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


def test_models_output_shapes(mod):
    config = mod.Config()
    x = torch.randn(3, 3, 32, 32)
    for name in ("vgg", "resnet"):
        assert mod.build_model(name, 10, config)(x).shape == (3, 10)
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
    # 옵티마이저가 얼린 층을 바꾸지 않는지
    before = model.conv1.weight.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.step()
    assert torch.equal(before, model.conv1.weight)
    # 미세 조정: 모두 풀면 모든 파라미터에 기울기
    mod.unfreeze(model)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_pretrained_offline_skips_in_one_line(mod, capsys):
    data = color_shapes(0, 16, 8)
    assert mod.transfer_learning(data, device=torch.device("cpu"), config=mod.Config(data="offline"),
                                 smoke=True) == {}
    lines = [line for line in capsys.readouterr().out.splitlines() if "건너뜁니다" in line]
    assert len(lines) == 1 and "가중치" in lines[0]


# ---------------------------------------------------------------------------
# 데이터: 정규화, 증강, 도형 데이터
# ---------------------------------------------------------------------------
def test_channel_stats_match_torch(mod):
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    mean, std = mod.channel_stats(images, chunk=7)
    x = images.double() / 255
    assert torch.allclose(mean.double(), x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(std.double(), x.std(dim=(0, 2, 3), unbiased=False), atol=1e-5)


def test_augmentation_keeps_shapes_and_labels(mod):
    torch.manual_seed(0)
    batch = 64
    # 이미지마다 다른 상수 값(= 라벨 표시): 증강 뒤에도 각 이미지에는 자기 값과 패딩의 0 만 있어야 함
    values = torch.arange(1, batch + 1, dtype=torch.float32)
    x = values.view(batch, 1, 1, 1).expand(batch, 3, 32, 32).contiguous()
    out = mod.augment_batch(x)
    assert out.shape == x.shape
    for i in range(batch):
        assert set(out[i].unique().tolist()) <= {0.0, values[i].item()}
        assert (out[i] == values[i]).float().mean() >= (24 / 32) ** 2 - 1e-6  # 최대 4+4 줄만 패딩
    # 각 결과는 패딩한 원본의 32x32 조각(그대로 또는 좌우 뒤집힘)이어야 함
    pattern = torch.randn(8, 3, 32, 32)
    out = mod.augment_batch(pattern)
    padded = F.pad(pattern, (4, 4, 4, 4))
    flips = 0
    for i in range(8):
        crops = [padded[i, :, r:r + 32, c:c + 32] for r in range(9) for c in range(9)]
        plain = any(torch.equal(out[i], crop) for crop in crops)
        flipped = any(torch.equal(out[i], crop.flip(2)) for crop in crops)
        assert plain or flipped
        flips += flipped
    assert 0 < flips < 8  # 약 절반이 뒤집힘 (seed 0 에서)


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


# ---------------------------------------------------------------------------
# 이미지 폴더
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


def test_image_folder_mixed_sizes_and_split(tmp_path):
    _write_folder(tmp_path / "photos")
    (tmp_path / "photos" / "cat" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path / "photos", seed=0)
    assert data.classes == ["cat", "dog"]
    assert data.x_train.shape[1:] == (3, 32, 32) and data.x_train.dtype == torch.uint8
    assert len(data.y_train) + len(data.y_test) == 24
    assert torch.bincount(data.y_test).tolist() == [3, 2] or torch.bincount(data.y_test).tolist() == [2, 3]
    # train/ test/ 로 나뉜 폴더
    _write_folder(tmp_path / "split" / "train", per_class=4)
    _write_folder(tmp_path / "split" / "test", per_class=2)
    split = load_image_folder(tmp_path / "split", seed=0)
    assert (len(split.y_train), len(split.y_test)) == (8, 4)
    # cv2.imwrite 는 BGR 순서: 0번(B)을 강하게 쓴 cat 이미지를 RGB 로 읽으면 2번 채널이 강해야 함
    cats = split.x_train[split.y_train == 0].float()
    assert cats[:, 2].mean() > cats[:, 0].mean() + 100


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "x.txt").write_text("text")
    with pytest.raises(UserError, match="이미지를 찾지 못했습니다"):
        load_image_folder(tmp_path / "empty", seed=0)
    _write_folder(tmp_path / "one", classes=("only",), per_class=3)
    with pytest.raises(UserError, match="클래스가 1개"):
        load_image_folder(tmp_path / "one", seed=0)


def test_image_folder_end_to_end_and_predict(tmp_path):
    _write_folder(tmp_path / "photos", per_class=16)
    out = tmp_path / "out"
    result = run_script(SCRIPT, "--data-dir", str(tmp_path / "photos"), "--epochs", "2", "--mlp-epochs", "1",
                        "--depth-steps", "0", "--batch-size", "8", "--device", "cpu", "--out-dir", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    record = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert record["data"].startswith("image folder photos")
    assert record["timing"]["train_images_per_second"] > 0
    result = run_script(SCRIPT, "--predict", str(tmp_path / "photos" / "dog" / "3.png"), "--device", "cpu",
                        "--out-dir", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dog" in result.stdout or "cat" in result.stdout


# ---------------------------------------------------------------------------
# 잘못된 입력: 한 줄 오류, traceback 없음
# ---------------------------------------------------------------------------
def _assert_user_error(result, fragment):
    assert result.returncode != 0
    assert "오류:" in result.stderr and fragment in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_bad_inputs_give_one_line(tmp_path):
    (tmp_path / "no_images" / "a").mkdir(parents=True)
    _assert_user_error(run_script(SCRIPT, "--data-dir", str(tmp_path / "no_images"), "--device", "cpu",
                                  "--out-dir", str(tmp_path / "o1")), "이미지를 찾지 못했습니다")
    _write_folder(tmp_path / "one", classes=("only",), per_class=2)
    _assert_user_error(run_script(SCRIPT, "--data-dir", str(tmp_path / "one"), "--device", "cpu",
                                  "--out-dir", str(tmp_path / "o2")), "클래스가 1개")
    not_image = tmp_path / "model.txt"
    not_image.write_text("hello")
    _assert_user_error(run_script(SCRIPT, "--predict", str(not_image), "--device", "cpu",
                                  "--out-dir", str(tmp_path / "o3")), "이미지로 읽을 수 없습니다")


# ---------------------------------------------------------------------------
# 학습 확인과 재현성
# ---------------------------------------------------------------------------
def test_smoke_in_process_is_deterministic(mod, tmp_path):
    config = dict(smoke=True, data="offline", device="cpu", depth_steps=1)
    first = mod.main(mod.Config(out_dir=str(tmp_path / "a"), **config))
    second = mod.main(mod.Config(out_dir=str(tmp_path / "b"), **config))
    assert first == second
    for name in ("filters.png", "feature_maps.png", "depth_comparison.png", "confusion_matrix.png",
                 "predictions.png", "history.png"):
        assert (tmp_path / "a" / name).stat().st_size > 1000


@pytest.mark.slow
def test_short_offline_run_beats_chance(mod):
    """도형 4,000장으로 VGG 를 3 epoch (OneCycle): 우연(10%)보다 훨씬 높아야 합니다."""
    torch.manual_seed(0)
    data = color_shapes(seed=0, train_size=4000, test_size=500)
    mean, std = mod.channel_stats(data.x_train)
    device = torch.device("cpu")
    model = mod.VGGNet(10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, epochs=3, steps_per_epoch=63)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for epoch in (1, 2, 3):
        mod.train_one_epoch(model, data, optimizer, scheduler, scaler, mean=mean, std=std, device=device,
                            batch_size=64, augment=False, amp=False, epoch=epoch)
    _, accuracy, _, _ = mod.evaluate(model, data.x_test, data.y_test, mean=mean, std=std, device=device)
    assert accuracy > 0.3, accuracy  # 우연 수준 0.10 보다 20점 이상
    assert isinstance(data, ColorImages)
