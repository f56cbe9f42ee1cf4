"""10장: CTC 경로 세기 ↔ F.ctc_loss, 줄이기 규칙, 디코딩, CER, 시간 축, 캡차 재현성, 학습, 잘못된 입력."""

from __future__ import annotations

import json
import math

import cv2
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, load_chapter, run_script

from utils.data.captcha import KERAS_ALPHABET, Captchas, generate_captchas, load_captcha_folder, load_captchas
from utils.runtime import UserError

SCRIPT = ROOT / "10_crnn_ctc_captcha.py"


@pytest.fixture(scope="module")
def mod():
    return load_chapter("10")


# ---------------------------------------------------------------------------
# CTC: 경로를 모두 세기 ↔ F.ctc_loss, 줄이기 규칙
# ---------------------------------------------------------------------------
def test_ctc_worked_example_matches_course_and_f_ctc_loss(mod):
    assert mod.ctc_worked_example() == pytest.approx(0.24, abs=1e-6)  # 0.16 + 0.04 + 0.04


@pytest.mark.parametrize("label", ["a", "ab", "aa", "ba", "aab"])
def test_brute_force_paths_equal_f_ctc_loss_on_random_frames(mod, label):
    torch.manual_seed(len(label))
    steps, symbols = 5, "_ab"
    log_probs = torch.randn(steps, len(symbols)).log_softmax(-1)  # (T, K)
    by_paths = mod.brute_force_ctc_probability(log_probs.exp(), label, symbols)
    targets = torch.tensor([[symbols.index(c) for c in label]])
    loss = F.ctc_loss(log_probs.unsqueeze(1), targets, torch.tensor([steps]), torch.tensor([len(label)]),
                      blank=0, reduction="sum")
    assert by_paths == pytest.approx(math.exp(-loss.item()), rel=1e-4)


def test_collapse_merges_repeats_then_drops_blanks(mod):
    assert mod.collapse("dddooo_ggss") == "dogs"
    assert mod.collapse("d_oo_g_ss") == "dogs"
    assert mod.collapse("do_o_gs") == "doogs"  # 빈칸이 사이를 막은 겹친 글자는 남음
    assert mod.collapse("aa") == "a" and mod.collapse("a_a") == "aa" and mod.collapse("__") == ""


def test_ctc_loss_helper_uses_blank_zero_and_lengths(mod):
    torch.manual_seed(0)
    log_probs = torch.randn(12, 2, 4).log_softmax(-1)  # (T, B, K), 알파벳 "abc"
    labels = ["ab", "ccc"]  # 길이가 다른 라벨, 겹친 글자
    one = lambda b, target: F.ctc_loss(log_probs[:, b], torch.tensor(target), torch.tensor(12),
                                       torch.tensor(len(target)), reduction="sum") / len(target)
    expected = (one(0, [1, 2]) + one(1, [3, 3, 3])) / 2  # 라벨 길이로 나눈 뒤 배치 평균
    assert mod.ctc_loss(log_probs, labels, "abc").item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------------------
# 디코딩과 지표
# ---------------------------------------------------------------------------
def hand_built_log_probs(path: list[int], classes: int = 4, peak: float = 0.9) -> torch.Tensor:
    """frame t 에서 path[t] 가 peak 의 확률을 갖는 (T, 1, K) log 확률."""
    probs = torch.full((len(path), classes), (1 - peak) / (classes - 1))
    probs[torch.arange(len(path)), torch.tensor(path)] = peak
    return probs.log().unsqueeze(1)


def test_greedy_decode_keeps_doubled_characters(mod):
    # 알파벳 "2yg": 1='2', 2='y', 3='g'. 경로 2 2 _ y g g _ g _ g → "2yggg"
    path = [1, 1, 0, 2, 3, 3, 0, 3, 0, 3]
    assert mod.greedy_decode(hand_built_log_probs(path), "2yg") == ["2yggg"]
    assert mod.greedy_decode(hand_built_log_probs([0, 0, 0]), "2yg") == [""]
    batch = torch.cat([hand_built_log_probs([1, 0, 1]), hand_built_log_probs([2, 2, 2])], dim=1)  # (T, 2, K)
    assert mod.greedy_decode(batch, "2yg") == ["22", "y"]


def test_beam_search_finds_label_that_greedy_path_misses(mod):
    # frame 2개, p(_)=0.6, p(a)=0.4: 최선 경로 "__" (0.36) → "", 최선 라벨 "a" (0.16+0.24+0.24=0.64)
    log_probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()  # (T, K)
    assert mod.greedy_decode(log_probs.unsqueeze(1), "a") == [""]
    assert mod.beam_search_decode(log_probs, "a", beam_width=3) == "a"
    path = [1, 1, 0, 2, 3, 3, 0, 3, 0, 3]  # 뚜렷한 경로면 빔도 탐욕과 같은 답 (겹친 글자 포함)
    assert mod.beam_search_decode(hand_built_log_probs(path)[:, 0], "2yg", beam_width=5) == "2yggg"


def test_wide_beam_search_finds_most_probable_label_by_brute_force(mod):
    """빔이 충분히 넓으면 접두사 빔 탐색은 정확: 모든 경로를 세어 라벨별로 더한 확률의 argmax 와 같아야 함."""
    import itertools
    from collections import defaultdict

    symbols = "_ab"
    for seed in range(12):
        torch.manual_seed(seed)
        log_probs = (torch.randn(5, 3) * 1.5).log_softmax(-1)  # (T, K): 애매한 frame 들
        label_probability = defaultdict(float)
        for path in itertools.product(range(3), repeat=5):
            label = mod.collapse("".join(symbols[k] for k in path))
            label_probability[label] += math.exp(sum(log_probs[t, k].item() for t, k in enumerate(path)))
        best = max(label_probability, key=label_probability.get)
        assert mod.beam_search_decode(log_probs, "ab", beam_width=100, prune=-math.inf) == best, seed


def test_cer_and_edit_distance_on_known_strings(mod):
    from torchmetrics.text import CharErrorRate

    assert mod.edit_distance("kitten", "sitting") == 3
    assert mod.edit_distance("2yggg", "2yg") == 2 and mod.edit_distance("", "abc") == 3
    references, hypotheses = ["2b827", "2yggg", "dogs", "abc"], ["2b827", "2yg", "dgos", ""]
    expected = (0 + 2 + 2 + 3) / (5 + 5 + 4 + 3)
    assert mod.character_error_rate(references, hypotheses) == pytest.approx(expected)
    assert mod.character_error_rate(references, hypotheses) == pytest.approx(
        float(CharErrorRate()(hypotheses, references)))


def test_confusion_table_counts_substitutions_and_deletions(mod):
    table = mod.confusion_table(["abc", "aab"], ["abd", "ab"], "abcd")  # 0 = '-'
    assert table[3, 4] == 1  # c → d 치환
    assert table[1, 0] == 1  # a 하나를 빠뜨림
    assert table.sum() == 6 and table.diagonal()[1:].sum() == 4


# ---------------------------------------------------------------------------
# 모델 모양
# ---------------------------------------------------------------------------
def test_time_axis_is_long_enough_for_repeated_characters(mod):
    config = mod.Config()
    model = mod.build_model(len(config.alphabet) + 1, config.image_height, config.width, config.hidden_size,
                            config.dropout)
    log_probs = model.eval()(torch.zeros(3, 1, config.image_height, config.image_width))
    steps = log_probs.shape[0]
    assert log_probs.shape == (steps, 3, len(config.alphabet) + 1)
    assert steps >= 2 * config.captcha_length + 1
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(steps, 3), atol=1e-5)  # log-softmax


# ---------------------------------------------------------------------------
# 데이터: 재현성, 폴더 읽기
# ---------------------------------------------------------------------------
def test_same_seed_gives_same_captcha_images():
    first_images, first_texts = generate_captchas(6, 5, KERAS_ALPHABET, seed=3, height=32, width=128)
    again_images, again_texts = generate_captchas(6, 5, KERAS_ALPHABET, seed=3, height=32, width=128)
    other_images, other_texts = generate_captchas(6, 5, KERAS_ALPHABET, seed=4, height=32, width=128)
    assert first_texts == again_texts and torch.equal(first_images, again_images)
    assert first_texts != other_texts and not torch.equal(first_images, other_images)
    assert first_images.shape == (6, 1, 32, 128) and first_images.dtype == torch.uint8
    assert all(len(t) == 5 and set(t) <= set(KERAS_ALPHABET) for t in first_texts)


def write_captcha_folder(folder, labels, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = generate_captchas(len(labels), 1, "ab", seed=seed, height=50, width=200)
    for image, label in zip(images, labels):
        cv2.imwrite(str(folder / f"{label}.png"), image[0].numpy())


def test_folder_labels_of_different_lengths_are_supported(tmp_path):
    labels = [f"{a}{b}{c}" for a in "abc" for b in "abc" for c in "abc"] + ["ab", "ba", "ccab"]
    write_captcha_folder(tmp_path, labels)
    data = load_captcha_folder(tmp_path, seed=0, val_fraction=0.1, test_fraction=0.1, height=32, width=128)
    assert data.alphabet == "abc"
    assert sorted(data.train_labels + data.val_labels + data.test_labels) == sorted(labels)
    assert data.train_images.shape[1:] == (1, 32, 128)


def test_folder_bad_inputs_are_named(tmp_path, mod):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="이미지"):
        load_captcha_folder(tmp_path / "empty", 0, 0.1, 0.1, 32, 128)
    write_captcha_folder(tmp_path / "broken", ["aa", "ab", "ba", "bb", "aab", "bba"])
    (tmp_path / "broken" / "abab.png").write_text("not an image")
    with pytest.raises(UserError, match="abab.png"):  # 읽을 수 없는 파일의 이름
        load_captcha_folder(tmp_path / "broken", 0, 0.1, 0.1, 32, 128)
    # 검증·시험으로 간 라벨에만 있는 글자 → 그 글자를 밝힘 (학습으로 가면 알파벳에 들어감)
    write_captcha_folder(tmp_path / "unseen", ["aa", "ab", "ba", "bb", "aab", "abb", "bab", "zz"])
    outcomes = set()
    for seed in range(10):
        try:
            data = load_captcha_folder(tmp_path / "unseen", seed, 0.2, 0.2, 32, 128)
            assert "z" in data.alphabet
            outcomes.add("train")
        except UserError as error:
            assert "'z'" in str(error) and "zz.png" in str(error)
            outcomes.add("error")
    assert outcomes == {"train", "error"}
    # 라벨이 시간 축에 비해 너무 길면 어떻게 고칠지 한 줄로
    image = torch.zeros(1, 1, 32, 64, dtype=torch.uint8)
    long_data = Captchas(image, ["abababababab"], image, ["ab"], image, ["ab"], "ab", "test")
    with pytest.raises(UserError, match="--image-width"):
        mod.check_labels_fit(long_data, time_steps=16)


def test_pointed_empty_data_dir_is_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_script(SCRIPT, "--data-dir", str(tmp_path / "empty"), "--device", "cpu",
                        "--out-dir", str(tmp_path / "out"), timeout=120)  # --data auto: 내려받지 않고 오류
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(tmp_path / "empty") in result.stderr


# ---------------------------------------------------------------------------
# 학습 확인과 --predict
# ---------------------------------------------------------------------------
def test_short_run_lowers_ctc_loss(mod):
    torch.manual_seed(0)
    data = load_captchas("offline", "data", False, 0, val_fraction=0.1, test_fraction=0.1, height=32,
                         width=128, offline_sizes=(128, 64, 4), length=4, alphabet="2345")
    config = mod.Config(batch_size=32, lr=3e-3, min_epoch_images=1, width=16, hidden_size=48)
    model = mod.build_model(len(data.alphabet) + 1, 32, config.width, config.hidden_size, 0.0)
    before = mod.evaluate(model, data.val_images, data.val_labels, data.alphabet, "cpu")["loss"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    generator = torch.Generator().manual_seed(0)
    for epoch in (1, 2, 3):
        mod.train_one_epoch(model, data, optimizer, scheduler, "cpu", epoch, config, generator)
    after = mod.evaluate(model, data.val_images, data.val_labels, data.alphabet, "cpu")["loss"]
    assert after < 0.5 * before, (before, after)  # 학습하지 않은 모델의 손실의 절반 아래


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, mod):
    out_dir = tmp_path_factory.mktemp("ch10_smoke")
    mod.run(mod.main, mod.Config,
            ["--smoke", "--data", "offline", "--device", "cpu", "--out-dir", str(out_dir)])
    return out_dir


def test_smoke_run_writes_metrics_and_figures(trained_dir):
    record = json.loads((trained_dir / "metrics.json").read_text(encoding="utf-8"))
    assert {"test_sequence_accuracy", "test_cer", "train_sequence_accuracy"} <= set(record["metrics"])
    assert record["headline"]["name"] == "test_sequence_accuracy"
    for name in ("learning_curve.png", "test_predictions.png", "frame_probabilities.png",
                 "character_confusion.png", "best.pt", "last.pt", "history.csv"):
        assert (trained_dir / name).is_file(), name


def predict(mod, out_dir, path, capsys):
    code = 0
    try:
        mod.run(mod.main, mod.Config, ["--predict", str(path), "--device", "cpu", "--out-dir", str(out_dir)])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr()


def test_predict_prints_text_and_names_characters_outside_alphabet(mod, trained_dir, tmp_path, capsys):
    image, _ = generate_captchas(1, 5, KERAS_ALPHABET, seed=9, height=50, width=200)
    path = tmp_path / "captcha.png"  # 'a', 'h', 't' 는 알파벳 밖
    cv2.imwrite(str(path), image[0, 0].numpy())
    code, out = predict(mod, trained_dir, path, capsys)
    assert code == 0
    assert "'a', 'h', 't'" in out.out and "captcha.png:" in out.out
    result = json.loads((trained_dir / "prediction.json").read_text(encoding="utf-8"))
    assert result["file"] == str(path) and set(result["text"]) <= set(KERAS_ALPHABET)


@pytest.mark.parametrize("kind", ["folder", "text_file", "missing", "empty_file"])
def test_predict_bad_input_is_one_line(mod, trained_dir, tmp_path, capsys, kind):
    path = {"folder": tmp_path, "text_file": tmp_path / "2b827.png", "missing": tmp_path / "nope.png",
            "empty_file": tmp_path / "empty.png"}[kind]
    if kind == "text_file":
        path.write_text("not an image")
    if kind == "empty_file":
        path.write_bytes(b"")
    code, out = predict(mod, trained_dir, path, capsys)
    assert code == 2
    assert len(out.err.strip().splitlines()) == 1 and out.err.startswith("오류:")
    assert "Traceback" not in out.err


def test_model_input_is_the_same_for_light_text_on_dark_and_dim_ink(mod):
    """실제 캡차(어두운 배경에 흐린 밝은 글자)와 오프라인 캡차(밝은 배경에 진한 글자)가 모델에는 같은 입력.

    같은 글자 모양을 두 방식으로 그려 to_model_input 이 같은 텐서를 내는지, 배경이 +1 쪽인지 봅니다.
    """
    strokes = torch.zeros(2, 1, 32, 128)
    strokes[0, 0, 8:24, 10:14] = 1  # 세로 획
    strokes[1, 0, 14:18, 30:90] = 1  # 가로 획
    offline = (235 - strokes * 215).to(torch.uint8)     # 밝은 배경 235, 진한 글자 20
    real = (8 + strokes * 140).to(torch.uint8)          # 어두운 배경 8, 흐린 글자 148
    a, b = mod.to_model_input(offline), mod.to_model_input(real)
    assert torch.allclose(a, b, atol=1e-5)
    assert a[strokes == 0].min() == 1 and a[strokes == 1].max() == -1


@pytest.mark.parametrize("accuracy, warned", [(0.0, True), (0.9, False)])
def test_untrained_score_ends_with_one_warning_line(mod, monkeypatch, capsys, accuracy, warned):
    """시험 시퀀스 정확도가 '늘 같은 라벨' 기준선과 같으면(배우지 못함) 경고 한 줄, 배웠으면 없음."""
    labels = [f"{i:04d}" for i in range(40)]
    data = Captchas(torch.zeros(40, 1, 32, 128, dtype=torch.uint8), labels, None, None,
                    torch.zeros(40, 1, 32, 128, dtype=torch.uint8), labels, "0123456789", "test")
    monkeypatch.setattr(mod, "evaluate", lambda *args, **kwargs: {"sequence_accuracy": accuracy, "cer": 0.5})
    mod.evaluate_test_and_train(None, data, "cpu", max_batches=None)
    out = capsys.readouterr().out
    assert ("경고:" in out) is warned
    if warned:
        assert "--min-epoch-images" in out


def test_budget_is_six_epochs_offline_and_thirty_for_a_real_folder(mod):
    """--epochs 0(기본): 오프라인 캡차 6 epoch 그대로, 실제 폴더는 3배. --epochs N 은 정확히 N."""
    def fake(name):
        images = torch.zeros(4, 1, 32, 128, dtype=torch.uint8)
        return Captchas(images, ["1234"] * 4, images, ["1234"] * 4, images, ["1234"] * 4, "1234", name)

    assert mod.training_epochs(mod.Config(), fake("ImageCaptcha 5-char, 19 symbols (offline)")) == 6
    assert mod.training_epochs(mod.Config(), fake("captcha folder x (4 images, 4-char, real)")) == 30
    assert mod.training_epochs(mod.Config(epochs=4), fake("captcha folder x (real)")) == 4
    assert mod.training_epochs(mod.Config(smoke=True), fake("captcha folder x (real)")) == 3
