"""시험이 제 몫을 하는지 확인: 지키는 코드를 한 번 일부러 망가뜨리고, 그 시험이 빨갛게 되는지 봅니다.

    python tools/break_it.py                 # 모든 망가뜨리기(mutation)를 차례로, 마지막에 표
    python tools/break_it.py --only utils    # 이름에 'utils' 가 든 것만
    python tools/break_it.py --list          # 실행하지 않고 목록만

망가뜨리기마다: 파일의 정확한 문자열 하나를 바꾸고 → 그 문자열을 지키는 시험만 실행 →
시험이 실패해야 '잡힘(caught)' → 파일을 원래대로 되돌림 (예외·Ctrl+C 에도 되돌림). 바꿀 문자열이
파일에 정확히 한 번 있지 않으면 '적용 안 됨'으로 적습니다 (코드가 바뀌어 목록이 낡았다는 뜻).
git 작업 트리(worktree)에서 돌리세요: 도는 동안 파일이 잠시 망가진 상태입니다.
결과 표는 Markdown 으로 출력하고 outputs/break_it.md 에도 씁니다.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Mutation:
    name: str  # 무엇을 망가뜨리나 (표의 첫 칸)
    path: str  # 저장소 기준 파일
    old: str  # 정확히 한 번 나오는 원래 문자열
    new: str  # 망가뜨린 문자열
    tests: str  # 실행할 pytest 인자 (이것이 실패해야 함)


MUTATIONS = [
    # ---- utils/runtime.py: 플래그, 출력 폴더, 한 줄 오류 ----
    Mutation("parse_config: NaN/inf 검사 빠짐", "utils/runtime.py",
             "if isinstance(value, float) and not math.isfinite(value):",
             "if False:", "tests/test_utils.py -k bad_flags"),
    Mutation("prepare_out_dir: 쓸 수 없는 폴더를 UserError 로 바꾸지 않음", "utils/runtime.py",
             "    except OSError as error:\n        raise UserError(f\"--out-dir",
             "    except ValueError as error:\n        raise UserError(f\"--out-dir",
             "tests/test_contract.py -k out_dir_that_cannot and 05_"),
    Mutation("run: UserError 가 traceback 으로 샘", "utils/runtime.py",
             "print(f\"오류: {error}\", file=sys.stderr)\n        raise SystemExit(2) from None",
             "raise", "tests/test_utils.py -k run_turns_user_errors"),
    Mutation("in_notebook: 노트북을 알아보지 못함 (커널 인자를 플래그로 읽음)", "utils/runtime.py",
             "return type(shell).__name__ == \"ZMQInteractiveShell\"", "return False",
             "tests/test_contract.py -k notebook"),
    # ---- utils/training.py: 체크포인트, 이어하기, 진행 막대 ----
    Mutation("resume_or_start: 끝난 epoch 을 한 번 더 학습", "utils/training.py",
             "return saved[\"epoch\"] + 1, saved[\"best\"]", "return saved[\"epoch\"], saved[\"best\"]",
             "tests/test_utils.py -k round_trip"),
    Mutation("set_rng_states: DataLoader 생성기를 되돌리지 않음", "utils/training.py",
             "        generator.set_state(state)", "        pass",
             "tests/test_utils.py -k round_trip"),
    Mutation("resume_or_start: 최적화기 상태를 되살리지 않음", "utils/training.py",
             "if obj is not None and saved.get(key) is not None:",
             "if obj is not None and saved.get(key) is not None and key != \"optimizer\":",
             "tests/test_contract.py -k interrupt_then_resume and 05_"),
    Mutation("resume_or_start: 다른 설정의 체크포인트를 받아들임", "utils/training.py",
             "    if differences:\n        raise UserError",
             "    if False:\n        raise UserError",
             "tests/test_utils.py -k refuses_other_settings"),
    Mutation("save_checkpoint: 임시 파일 없이 제자리에 씀 (원자적이지 않음)", "utils/training.py",
             "        torch.save(checkpoint, tmp_path)\n        os.replace(tmp_path, path)",
             "        torch.save(checkpoint, path)", "tests/test_utils.py -k atomic"),
    Mutation("make_checkpoint: 기록(history)을 저장하지 않음", "utils/training.py",
             "\"history\": [dict(row) for row in history.rows] if history is not None else [],",
             "\"history\": [],", "tests/test_smoke.py -k 05_"),
    Mutation("History.epochs_since_best: 같은 값도 나아진 것으로 셈", "utils/training.py",
             "return len(values) - 1 - values.index(best_value)",
             "return values[::-1].index(best_value)", "tests/test_utils.py -k epochs_since_best"),
    Mutation("progress: SIGINT 를 한 걸음 늦게 보냄", "utils/training.py",
             "        if index == step:", "        if index == step + 1:",
             "tests/test_utils.py -k progress_sends"),
    Mutation("check_finite: NaN 손실을 그냥 지나감", "utils/training.py",
             "    if not torch.isfinite(loss):", "    if False:", "tests/test_utils.py -k nan_loss"),
    # ---- utils/visualization.py + tests/figure_check.py ----
    Mutation("plot_history: 정수 epoch 눈금 빠짐 (2.5 epoch)", "utils/visualization.py",
             "        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # 2.5 epoch",
             "        pass  # 2.5 epoch", "tests/test_contract.py -k figures_are_readable and 05_"),
    # ---- 문서의 숫자 (tests/test_numbers.py) ----
    Mutation("05 docstring 의 벽시계 시간을 손으로 고침", "05_lstm_sequence_prediction.py",
             "wall 6.7 (6.4–7.4) s", "wall 6.5 (6.4–7.4) s", "tests/test_numbers.py -k 05_"),
    # ---- 장마다 하나: 직접 짠 조각 ----
    Mutation("01: 손으로 푼 ∂L/∂w 에서 2 를 빠뜨림", "01_pytorch_basics.py",
             "manual_w = (2 * residual * x).sum()", "manual_w = (residual * x).sum()",
             "tests/test_ch01.py -k hand_derived_gradient"),
    Mutation("02: 배치 정규화에서 eps 를 분산 밖에 더함", "02_neural_networks.py",
             "torch.sqrt(var + bn.eps)", "(torch.sqrt(var) + bn.eps)",
             "tests/test_ch02.py -k batch_norm_from_scratch"),
    Mutation("03: 손 합성곱이 창을 한 칸 밀려 읽음", "03_cnn_image_classification.py",
             "window = image[i * stride:i * stride + k, j * stride:j * stride + k]",
             "window = image[i * stride:i * stride + k, j * stride + 1:j * stride + k + 1]",
             "tests/test_ch03.py -k conv_by_hand"),
    Mutation("04: 손 RNN 의 활성화를 tanh 대신 relu", "04_rnn_text_classification.py",
             "h = torch.tanh(x[:, t] @ weight_ih.T", "h = torch.relu(x[:, t] @ weight_ih.T",
             "tests/test_ch04.py -k rnn_by_hand"),
    Mutation("04: --embed-dropout 을 받아 두고 forward 에서 쓰지 않음", "04_rnn_text_classification.py",
             "embedded = self.embed_dropout(self.embedding(tokens))", "embedded = self.embedding(tokens)",
             "tests/test_ch04.py -k embed_dropout"),
    Mutation("04: 판정이 잡음 안의 차이도 '이겼습니다' 라고 함 (McNemar z 를 보지 않음)",
             "04_rnn_text_classification.py", "if ours > bow and z > Z_95:", "if ours > bow:",
             "tests/test_ch04.py -k verdict_names"),
    Mutation("05: 손 LSTM 셀의 출력에서 tanh(c_t) 를 빠뜨림", "05_lstm_sequence_prediction.py",
             "h_t = o_t * torch.tanh(c_t)", "h_t = o_t * c_t",
             "tests/test_ch05.py -k scratch_lstm"),
    Mutation("06: NMS 가 문턱 넘는 상자를 남김 (<= 를 >= 로)", "06_yolo_object_detection.py",
             "boxes[order])[0] <= iou_threshold]", "boxes[order])[0] >= iou_threshold]",
             "tests/test_ch06.py -k nms_matches"),
    Mutation("07: 기울기 벌점의 노름에서 1 을 빼지 않음", "07_gan_image_generation.py",
             "return ((norms - 1) ** 2).mean()", "return (norms ** 2).mean()",
             "tests/test_ch07.py -k gradient_penalty"),
    Mutation("08: 인과 마스크가 미래 한 칸을 보게 함", "08_transformer_nlp.py",
             "return torch.ones(length, length, dtype=torch.bool, device=device).tril()",
             "return torch.ones(length, length, dtype=torch.bool, device=device).tril(1)",
             "tests/test_ch08.py -k future_target_tokens"),
    Mutation("09: IoU 의 합집합에서 fn 을 빠뜨림", "09_unet_segmentation.py",
             "union = tp + fp + fn", "union = tp + fp",
             "tests/test_ch09.py -k iou_dice_accuracy_on_hand_made"),
    Mutation("10: CTC 줄이기에서 빈칸을 먼저 지움 (oo ← o_o)", "10_crnn_ctc_captcha.py",
             "merged = [symbol for i, symbol in enumerate(path) if i == 0 or symbol != path[i - 1]]",
             "path = path.replace(blank, \"\")\n    merged = [symbol for i, symbol in enumerate(path) "
             "if i == 0 or symbol != path[i - 1]]",
             "tests/test_ch10.py -k collapse_merges"),
    # ---- 11·12장 ----
    Mutation("11: 가우시안 KL 에서 exp(log σ²) 를 빠뜨림", "11_autoencoder_anomaly.py",
             "return -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(dim=1)",
             "return -0.5 * (1 + log_var - mu.pow(2)).sum(dim=1)", "tests/test_ch11.py -k gaussian_kl"),
    Mutation("11: SSIM 의 공분산에서 μxμy 를 빼지 않음", "11_autoencoder_anomaly.py",
             "cov_xy = F.conv2d(output * target, window) - mu_x * mu_y",
             "cov_xy = F.conv2d(output * target, window)", "tests/test_ch11.py -k ssim_and_psnr"),
    Mutation("11: 재매개변수화가 σ 대신 분산을 곱함", "11_autoencoder_anomaly.py",
             "return mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)",
             "return mu + torch.exp(log_var) * torch.randn_like(mu)",
             "tests/test_ch11.py -k reparameterisation"),
    Mutation("12: Y-PSNR 이 가장자리를 깎지 않음", "12_srgan_super_resolution.py",
             "return y[..., border:y.shape[-2] - border, border:y.shape[-1] - border] if border else y",
             "return y", "tests/test_ch12.py -k border_shave"),
    Mutation("12: SSIM 의 분산에서 평균²을 빼지 않음", "12_srgan_super_resolution.py",
             "sigma_x2 = F.conv2d(x * x, window) - mu_x**2  # 분산",
             "sigma_x2 = F.conv2d(x * x, window)  # 분산", "tests/test_ch12.py -k ssim_by_hand"),
    Mutation("12: Y 의 BT.601 가중치가 틀림 (R·B 바뀜)", "12_srgan_super_resolution.py",
             "Y_WEIGHTS = (65.481, 128.553, 24.966)", "Y_WEIGHTS = (24.966, 128.553, 65.481)",
             "tests/test_ch12.py -k matlab_rgb2ycbcr"),
    # ---- 학습 예산·조용한 실패·시험 스레드 (문제 21·22) ----
    Mutation("epochs_for_budget: 올림 대신 내림 (MNIST 54,000장이 2바퀴)", "utils/training.py",
             "return max(min_epochs, min(max_epochs, -(-budget_images // train_count)))",
             "return max(min_epochs, min(max_epochs, budget_images // train_count))",
             "tests/test_ch07.py -k budget"),
    Mutation("03: --epochs 를 주어도 예산을 씀", "03_cnn_image_classification.py",
             "epochs = config.epochs or training.epochs_for_budget(",
             "epochs = training.epochs_for_budget(", "tests/test_ch03.py -k budget"),
    Mutation("warn_if_trivial: 기준선과 같아도 조용함", "utils/training.py",
             "    if beaten:\n        return False", "    if True:\n        return False",
             "tests/test_utils.py -k warn_if_trivial"),
    Mutation("10: 어두운 배경의 캡차를 뒤집지 않음", "10_crnn_ctc_captcha.py",
             "x = torch.where(background < 0.5, 1 - x, x)", "x = x",
             "tests/test_ch10.py -k light_text"),
    Mutation("10: 배우지 못한 모델에도 경고 없음", "10_crnn_ctc_captcha.py",
             "    if max_batches is None:  # 기준선", "    if False:  # 기준선",
             "tests/test_ch10.py -k untrained_score"),
    Mutation("06: --epochs 를 주어도 예산을 씀", "06_yolo_object_detection.py",
             "epochs = config.epochs or training.epochs_for_budget(len(data.train), budget,",
             "epochs = training.epochs_for_budget(len(data.train), budget,",
             "tests/test_ch06.py -k budget"),
    Mutation("06: 사진 폴더도 조기 종료 (검증 15장의 mAP 로 학습 중간에 멈춤)", "06_yolo_object_detection.py",
             "\"patience\": 0,  # 조기 종료 끔", "\"patience\": 50,  # 조기 종료 끔",
             "tests/test_ch06.py -k budget"),
    Mutation("06: --patience 0 이 '끔'이 아님", "06_yolo_object_detection.py",
             "if not patience or history.epochs_since_best", "if history.epochs_since_best",
             "tests/test_ch06.py -k budget"),
    Mutation("09: 원래 해상도 폴더의 자동 예산이 절차적 값(18,000)", "09_unet_segmentation.py",
             "return config.train_images or (NATIVE_TRAIN_IMAGES if native else FIXED_TRAIN_IMAGES)",
             "return config.train_images or FIXED_TRAIN_IMAGES", "tests/test_ch09.py -k budget_counts"),
    Mutation("run: --resume 의 망가진 last.pt 를 데이터 준비 뒤에야 알아챔", "utils/runtime.py",
             "        check_resume_file(config)\n        return main(config)", "        return main(config)",
             "tests/test_utils.py -k resume_with_a_bad"),
    Mutation("DDP _leave_now: Ctrl+C(130)로 끝나는 프로세스가 0 으로 끝남", "utils/distributed.py",
             "code = error.code if isinstance(error, SystemExit) else 0", "code = 0",
             "tests/test_ddp.py -k ctrl_c_under_torchrun_then_resume and 08"),
    Mutation("conftest: 작업자 수와 상관없이 1 스레드", "tests/conftest.py",
             "return max(1, (os.cpu_count() or 1) // max(1, workers))", "return 1",
             "tests/test_utils.py -k threads_per_worker"),
]


def run_mutation(mutation: Mutation) -> tuple[str, float]:
    """(결과, 초). 결과: caught | MISSED | not applicable."""
    path = ROOT / mutation.path
    original = path.read_text(encoding="utf-8")
    if original.count(mutation.old) != 1:
        return f"not applicable ({original.count(mutation.old)}× found)", 0.0
    started = time.perf_counter()
    try:
        path.write_text(original.replace(mutation.old, mutation.new), encoding="utf-8")
        files, _, selector = mutation.tests.partition(" -k ")
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist", "-p", "no:cacheprovider",
                   *files.split(), *(["-k", selector] if selector else [])]
        # 스레드 수는 tests/conftest.py 가 정함 (여기서 정하면 그 규칙을 지키는 시험이 건너뜀)
        env = {**{k: v for k, v in os.environ.items()
                  if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TUTORIAL_TEST_THREADS")},
               "MPLBACKEND": "Agg"}
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    finally:
        path.write_text(original, encoding="utf-8")
    seconds = time.perf_counter() - started
    summary = (result.stdout.strip().splitlines() or ["?"])[-1]
    if result.returncode == 5:  # pytest: 고른 시험이 없음
        return f"no test selected ({summary})", seconds
    return ("caught" if result.returncode != 0 else "MISSED") + f" ({summary})", seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="이름·파일에 이 글자가 든 망가뜨리기만")
    parser.add_argument("--list", action="store_true", help="실행하지 않고 목록만")
    options = parser.parse_args()
    chosen = [m for m in MUTATIONS if options.only in m.name or options.only in m.path]
    if options.list:
        for m in chosen:
            print(f"{m.path:34} {m.name}  →  pytest {m.tests}")
        return
    lines = ["| 망가뜨린 것 | 파일 | 시험 | 결과 | 초 |", "|---|---|---|---|---|"]
    missed = 0
    for mutation in chosen:
        outcome, seconds = run_mutation(mutation)
        missed += not outcome.startswith("caught")
        line = f"| {mutation.name} | `{mutation.path}` | `{mutation.tests}` | {outcome} | {seconds:.0f} |"
        print(line, flush=True)
        lines.append(line)
    table = "\n".join(lines)
    out = ROOT / "outputs" / "break_it.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n", encoding="utf-8")
    print(f"\n{table}\n\n{len(chosen) - missed}/{len(chosen)} caught → {out}")
    raise SystemExit(1 if missed else 0)


if __name__ == "__main__":
    main()
