"""08장 트랜스포머: 손으로 만든 조각을 PyTorch·sacrebleu 와 비교, 마스크, 해독, 학습, 잘못된 입력."""

from __future__ import annotations

import gzip
import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import SHARED_DATA, load_chapter

from utils.data import translation
from utils.runtime import UserError, run


@pytest.fixture(scope="module")
def ch08():
    return load_chapter("08")


def tiny_model(ch08, seed: int = 0, vocab: int = 30):
    """학습하지 않은 작은 트랜스포머 (마스크 시험용: 가중치가 무엇이든 마스크의 성질은 성립해야 함)."""
    torch.manual_seed(seed)
    return ch08.build_model(source_vocab_size=vocab, target_vocab_size=vocab, d_model=32, heads=4, layers=2,
                            d_ff=64, dropout=0.0, max_len=32).eval()


# --- 어텐션 ------------------------------------------------------------------------------------
def test_worked_example_matches_course_numbers(ch08):
    result = ch08.attention_worked_example()
    assert result["scores"].tolist() == [2.0, 2.0, 3.0]
    e = math.e
    expected = torch.tensor([e**2, e**2, e**3]) / (2 * e**2 + e**3)  # softmax 를 손으로
    assert torch.allclose(result["weights"], expected, atol=1e-6)
    assert torch.allclose(result["context"], torch.tensor([0.788, 0.788, 0.212]), atol=1e-3)


@pytest.mark.parametrize("with_mask", [False, True])
def test_scaled_dot_product_attention_matches_pytorch(ch08, with_mask):
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(3, 2, 4, 8, generator=generator)  # (B, h, T_q, d_k)
    key, value = torch.randn(3, 2, 6, 8, generator=generator), torch.randn(3, 2, 6, 5, generator=generator)
    mask = (torch.rand(3, 1, 4, 6, generator=generator) > 0.3) | (torch.arange(6) == 0) if with_mask else None
    ours, weights = ch08.scaled_dot_product_attention(query, key, value, mask)
    reference = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    assert torch.allclose(ours, reference, atol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2, 4))
    if with_mask:
        assert (weights[~mask.expand_as(weights)] == 0).all()


def test_multi_head_attention_matches_nn_multihead_attention(ch08):
    assert ch08.check_multi_head_against_pytorch(seed=3) < 1e-5  # 교차 어텐션 + 패딩 (함수 안의 assert)
    # 자기 어텐션 + 인과 마스크를 여기서 따로: nn.MultiheadAttention 의 attn_mask 는 True = 가림
    torch.manual_seed(0)
    ours = ch08.MultiHeadAttention(16, 2, 0.0).eval()
    reference = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    with torch.no_grad():
        projections = (ours.q_proj, ours.k_proj, ours.v_proj)
        reference.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
        reference.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
        reference.out_proj.load_state_dict(ours.out_proj.state_dict())
        x = torch.randn(2, 5, 16)
        causal = ch08.causal_mask(5)
        for need_weights in (False, True):
            out, _ = ours(x, x, x, causal, need_weights=need_weights)
            expected, _ = reference(x, x, x, attn_mask=~causal)
            assert torch.allclose(out, expected, atol=1e-5)


def test_positional_encoding_values(ch08):
    encoding = ch08.positional_encoding(50, 8)
    assert encoding.shape == (50, 8)
    assert torch.equal(encoding[0], torch.tensor([0.0, 1.0] * 4))  # sin 0 = 0, cos 0 = 1
    assert math.isclose(encoding[1, 0], math.sin(1.0), abs_tol=1e-6)
    assert math.isclose(encoding[1, 1], math.cos(1.0), abs_tol=1e-6)
    assert math.isclose(encoding[5, 2], math.sin(5 / 10000 ** (2 / 8)), abs_tol=1e-6)  # i=1: 파장 10·2π
    assert math.isclose(encoding[40, 7], math.cos(40 / 10000 ** (6 / 8)), abs_tol=1e-6)


# --- 마스크: 가린 곳을 바꿔도 출력이 같아야 함 -------------------------------------------------------
def test_padding_does_not_change_outputs(ch08):
    model = tiny_model(ch08)
    short = torch.tensor([[2, 7, 8, 9, 3]])  # <bos> w w w <eos>
    long = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 3]])
    batch = torch.full((2, 8), ch08.PAD_ID)
    batch[0, :5], batch[1] = short[0], long[0]
    target = torch.tensor([[2, 5, 6], [2, 5, 6]])
    with torch.no_grad():
        alone = model(short, target[:1])
        together = model(batch, target)
        assert torch.allclose(alone[0], together[0], atol=1e-5)  # 패딩이 붙어도 같은 번역 점수
        # 대조: 패딩 자리에 진짜 단어가 있으면 결과가 달라져야 (시험이 무의미하지 않음)
        filled = batch.clone()
        filled[0, 5:] = 20
        assert not torch.allclose(model(filled, target)[0], alone[0], atol=1e-3)


def test_future_target_tokens_do_not_change_earlier_outputs(ch08):
    model = tiny_model(ch08)
    source = torch.tensor([[2, 7, 8, 9, 3]])
    target = torch.tensor([[2, 5, 6, 7, 8, 9]])
    changed = target.clone()
    changed[0, 3:] = torch.tensor([20, 21, 22])  # 위치 3 이후(미래)만 바꿈
    with torch.no_grad():
        before, after = model(source, target), model(source, changed)
    assert torch.allclose(before[0, :3], after[0, :3], atol=1e-5)  # 0..2 위치는 미래를 보지 않음
    assert not torch.allclose(before[0, 3:], after[0, 3:], atol=1e-3)


# --- 해독 ---------------------------------------------------------------------------------------
def test_beam_one_equals_greedy(ch08, short_training):
    """학습된 작은 모델로: 문장마다 <eos> 시점이 달라 끝난 빔 처리와 배치 안의 빔 행 번호가 모두 쓰임."""
    model, test = short_training["model"], short_training["test"]
    source = test.source[:40, : int((test.source[:40] != ch08.PAD_ID).sum(1).max())]  # (40, S)
    greedy = ch08.greedy_decode(model, source, max_len=32)
    assert (greedy == ch08.EOS_ID).any(dim=1).all()  # 모두 <eos> 로 끝남 (끝난 빔 경로를 시험함)
    assert torch.equal(ch08.beam_search(model, source, beam=1, max_len=32, alpha=0.6), greedy)
    beam = ch08.beam_search(model, source, beam=4, max_len=32, alpha=0.6)
    assert beam.shape[0] == 40 and (beam == ch08.EOS_ID).any(dim=1).all()


# --- BLEU ---------------------------------------------------------------------------------------
CORPORA = {
    "perfect": ([["a", "cat", "sits", "on", "the", "mat"]], [["a", "cat", "sits", "on", "the", "mat"]]),
    "partial": ([["the", "cat", "is", "on", "the", "mat", "today"], ["a", "dog", "runs", "in", "a", "park"]],
                [["the", "cat", "sits", "on", "the", "mat"],
                 ["a", "dog", "is", "running", "in", "the", "park"]]),
    "short": ([["the", "cat", "sat", "on"]], [["the", "cat", "sat", "on", "the", "red", "mat", "."]]),
    "repeats": ([["the", "the", "the", "cat", "sat", "on", "mat"]],
                [["the", "cat", "sat", "on", "the", "mat"]]),
    "no_4gram": ([["mat", "the", "on", "sat", "cat"]], [["the", "cat", "sat", "on", "the", "mat"]]),
}


@pytest.mark.parametrize("name", list(CORPORA))
def test_bleu_matches_sacrebleu(ch08, name):
    hypotheses, references = CORPORA[name]
    ours = ch08.corpus_bleu(hypotheses, references)["bleu"]
    assert ours == pytest.approx(ch08.sacrebleu_on_tokens(hypotheses, references), abs=1e-6)


def test_bleu_parts_by_hand(ch08):
    result = ch08.corpus_bleu(*CORPORA["short"])
    assert result["brevity_penalty"] == pytest.approx(math.exp(1 - 8 / 4))  # 4 토큰 vs 참조 8 토큰
    assert result["precisions"][:2] == [100.0, 100.0]
    clipped = ch08.corpus_bleu(*CORPORA["repeats"])
    assert clipped["precisions"][0] == pytest.approx(100 * 6 / 7)  # 'the' 세 번 중 두 번만 인정 (clip)


def test_detokenize_inverts_tokenize(ch08):
    for text in ("A man, in a red shirt (smiling), walks.", "키 큰 학생은 어제 책을 읽었다.",
                 "Ein Mann fährt Fahrrad."):
        assert ch08.detokenize(ch08.tokenize(text)) == text


# --- 데이터 --------------------------------------------------------------------------------------
def test_procedural_pairs_are_deterministic_and_test_combinations_are_unseen():
    first = translation.make_english_korean(300, 20, 100, seed=7)
    assert first == translation.make_english_korean(300, 20, 100, seed=7)
    train, _, test = first
    held_out = translation.held_out_combinations(7)

    def combination(sentence: str):
        words = sentence.rstrip(".").split()
        subject = next(w for w in words if w in translation.SUBJECTS)
        verb = next(v for v, (forms, _, _) in translation.VERBS.items() for w in words if w in forms)
        return subject, verb

    assert all(combination(s) not in held_out for s, _ in train)
    assert all(combination(s) in held_out for s, _ in test)
    assert {combination(s)[0] for s, _ in train} == set(translation.SUBJECTS)  # 주어는 모두 학습에 나옴


def test_korean_particles_follow_final_consonant():
    assert translation.topic_particle("학생") == "학생은" and translation.topic_particle("아이") == "아이는"
    assert translation.object_particle("책") == "책을" and translation.object_particle("사과") == "사과를"


def write_multi30k(folder, skip=None, short=None):
    folder.mkdir(parents=True, exist_ok=True)
    for split in translation.MULTI30K_SPLITS.values():
        for language in translation.MULTI30K_LANGUAGES:
            name = f"{split}.{language}"
            if name == skip:
                continue
            lines = [f"{language} sentence {i} ." for i in range(5 if name != short else 4)]
            with gzip.open(folder / f"{name}.gz", "wt", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


def test_multi30k_reader(tmp_path):
    write_multi30k(tmp_path)
    data = translation.load_translation_data("real", str(tmp_path), smoke=False, seed=0)
    assert len(data.train) == len(data.test) == 5 and data.train[0] == ("de sentence 0 .", "en sentence 0 .")


@pytest.mark.skipif(not (SHARED_DATA / "multi30k").is_dir(), reason="../shared/data/multi30k 없음")
def test_real_multi30k_sizes():
    splits = translation.read_multi30k(SHARED_DATA / "multi30k")
    assert [len(splits[s]) for s in ("train", "val", "test")] == [29_000, 1_014, 1_000]


# --- 잘못된 입력: 종료 코드 2, 한 줄, traceback 없음 -------------------------------------------------------
def run_in_process(ch08, capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        run(ch08.main, ch08.Config, list(argv))
    error = capsys.readouterr().err.strip()
    return exit_info.value.code, error


@pytest.fixture(scope="module")
def trained_dir(ch08, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ch08_smoke")
    run(ch08.main, ch08.Config, ["--smoke", "--data", "offline", "--device", "cpu",
                                 "--out-dir", str(out_dir)])
    return out_dir


@pytest.mark.parametrize("text, message", [("", "비어 있습니다"), ("   ", "비어 있습니다"),
                                           ("zzz qqq xyzzy", "모두 원문 어휘에 없습니다")])
def test_bad_predict_text(ch08, capsys, trained_dir, text, message):
    code, error = run_in_process(ch08, capsys, "--out-dir", str(trained_dir), "--device", "cpu",
                                 "--predict", text)
    assert code == 2 and message in error and len(error.splitlines()) == 1 and "Traceback" not in error


def test_predict_writes_translation(ch08, trained_dir):
    result = run(ch08.main, ch08.Config, ["--out-dir", str(trained_dir), "--device", "cpu",
                                          "--predict", "The tall student reads a zzz book."])
    saved = json.loads((trained_dir / "prediction.json").read_text(encoding="utf-8"))
    assert saved["greedy"] == result["greedy"] and "zzz" in saved["unknown_words"]
    assert saved["data"] == "procedural English→Korean (offline)"


@pytest.mark.parametrize("skip, short, message", [("val.en", None, "val.en"),
                                                  (None, "test_2016_flickr.de", "줄 수가 다릅니다")])
def test_broken_multi30k_folder(ch08, capsys, tmp_path, skip, short, message):
    write_multi30k(tmp_path / "data", skip=skip, short=short)
    code, error = run_in_process(ch08, capsys, "--data", "real", "--data-dir", str(tmp_path / "data"),
                                 "--out-dir", str(tmp_path / "out"), "--device", "cpu")
    assert code == 2 and message in error and len(error.splitlines()) == 1


def test_missing_multi30k_file_is_named(tmp_path):
    write_multi30k(tmp_path, skip="train.de")
    with pytest.raises(UserError, match=r"train\.de"):
        translation.read_multi30k(tmp_path)


# --- 학습: 짧은 학습이 학습 전 모델을 이김 -----------------------------------------------------------
@pytest.fixture(scope="module")
def short_training(ch08):
    """절차적 영어→한국어 1,500 쌍으로 작은 트랜스포머(1+1층, d=64)를 10 epoch (1 스레드 약 5초)."""
    config = ch08.Config(batch_size=64, lr=3e-3, max_len=32)  # 작은 모델은 큰 학습률로 빨리
    train_pairs, _, test_pairs = translation.make_english_korean(1500, 0, 100, seed=0)
    source_itos = ch08.build_vocab([ch08.tokenize(s) for s, _ in train_pairs], 1)
    target_itos = ch08.build_vocab([ch08.tokenize(t) for _, t in train_pairs], 1)
    stoi = ({w: i for i, w in enumerate(source_itos)}, {w: i for i, w in enumerate(target_itos)})
    train, test = (ch08.encode_split(pairs, *stoi, config.max_len) for pairs in (train_pairs, test_pairs))
    torch.manual_seed(0)
    model = ch08.build_model(len(source_itos), len(target_itos), d_model=64, heads=4, layers=1, d_ff=128,
                             dropout=0.0, max_len=config.max_len)
    cpu = torch.device("cpu")

    def bleu():
        rows, hypotheses = ch08.translate_split(model, test, target_itos, cpu, config, beam=1)
        return ch08.score_translations(hypotheses, [test.target_texts[r] for r in rows])["sacrebleu"]

    untrained = bleu()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, ch08.warmup_inverse_sqrt(24))  # 1 epoch
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(1, 11):  # 8 epoch 쯤 어순을 깨치며 BLEU 가 뛰어오름
        ch08.train_one_epoch(model, train, ch08.make_batches(train, config.batch_size, generator), optimizer,
                             scheduler, scaler, config, cpu, epoch)
    return {"model": model.eval(), "test": test, "untrained": untrained, "trained": bleu()}


def test_short_training_beats_untrained_model(short_training):
    untrained, trained = short_training["untrained"], short_training["trained"]
    assert untrained < 5 and trained > 60, (untrained, trained)  # 측정: 0.0 → 94
