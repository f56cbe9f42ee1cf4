"""모든 장의 공통 약속(DESIGN.md 'One script, one shape', 'Checkpoints', 'Behaviour')을 확인합니다.

- 중단과 이어하기: 빈 폴더의 `--resume` 은 처음부터, epoch 1 과 뒤쪽 epoch 에서 진짜 SIGINT(Ctrl+C)
  → `--resume` → 끊지 않은 실행과 metrics.json 의 모든 숫자가 같음. 그 실행들의 그림은 모두 읽을 수 있음.
- 잘못된 입력 표: 장마다 같은 입력들 → 종료 코드 2, "오류: ..." 한 줄, traceback 없음, 학습 전.
- 노트북: 장을 jupytext 로 노트북으로 바꿔 ipykernel 에서 셀마다 실행 (플래그 대신 Config 기본값).

새 장(`NN_*.py`)은 이 파일을 고치지 않아도 자동으로 포함됩니다. `--predict` 가 이미지 파일이 아닌
것을 받는 장만 PREDICT_INPUT 에 적습니다.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import matplotlib.figure
import pytest
import torch
from conftest import CHAPTERS, ROOT, chapter_number, load_chapter, run_script, smoke_args
from figure_check import figure_problems

from utils.runtime import auto_epochs

IDS = [p.stem for p in CHAPTERS]
# --predict 가 받는 입력의 예 (체크포인트 오류는 입력을 보기 전에 나야 하므로 파일이 없어도 됨)
PREDICT_INPUT = {"04": "a wonderful film", "05": "prices.csv", "07": "4", "08": "ein Mann fährt Fahrrad ."}


def metrics_of(out_dir: Path) -> dict:
    return json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"]


def reference_metrics(script: Path, smoke_run) -> dict:
    result, out_dir = smoke_run(script)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return metrics_of(out_dir)


def final_state(out_dir: Path) -> dict:
    """last.pt 의 모델·최적화기 상태. 시험 점수는 best.pt 에서 나오므로, best 뒤의 epoch 을 이어 하며
    생긴 차이(예: 최적화기 상태를 되살리지 않음)는 metrics.json 만으로는 보이지 않을 수 있습니다."""
    checkpoint = torch.load(out_dir / "last.pt", map_location="cpu", weights_only=True)
    return {"epoch": checkpoint["epoch"], "model": checkpoint["model"], "optimizer": checkpoint["optimizer"]}


def assert_same_state(expected, actual, where: str = "") -> None:
    """중첩된 dict/list/텐서가 비트 하나까지 같은지."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and torch.equal(expected, actual), f"{where} 가 다릅니다"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), f"{where} 의 키가 다릅니다"
        for key in expected:
            assert_same_state(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(actual), f"{where} 의 길이가 다릅니다"
        for index, (a, b) in enumerate(zip(expected, actual)):
            assert_same_state(a, b, f"{where}[{index}]")
    else:
        assert expected == actual, f"{where}: {expected!r} ≠ {actual!r}"


# --- 중단과 이어하기 ---------------------------------------------------------------------------
@pytest.mark.parametrize("script", CHAPTERS, ids=IDS)
def test_interrupt_then_resume_equals_uninterrupted_and_figures_are_readable(
        script, smoke_run, tmp_path, capsys, monkeypatch, sigint_raises):
    """빈 폴더에 `--resume` (last.pt 없음 → 처음부터, 한 줄로 알림) → epoch 1 의 첫 배치(아직 epoch 0 의
    last.pt 뿐)에서 Ctrl+C → 이어 하다가 epoch 3 의 첫 배치에서 또 Ctrl+C → 다시 이어 하기. 끝난 숫자는
    한 번도 끊지 않은 실행(새 프로세스의 smoke)과 모두 같아야 합니다. 세 실행에서 저장되는 모든 그림을
    figure_check 로 검사합니다: 잘린 제목, 겹친 글자, 정수가 아닌 epoch 눈금.

    세 번의 실행은 이 시험 프로세스 안에서 `run(main, Config, argv)` 로 합니다 (사용자가 치는 것과 같은
    진입점, 진짜 SIGINT). 새 파이썬 프로세스 셋을 띄우는 것보다 몇 배 빠르고, 같은 프로세스에 남은
    상태(전역 RNG, 캐시)가 이어하기에 섞이면 숫자가 달라져 오히려 더 잘 드러납니다. 진짜 프로세스가
    Ctrl+C 로 130 과 한 줄로 끝나는 것은 아래 `test_ctrl_c_in_a_real_process_…` 와 test_ddp 가 봅니다."""
    expected = reference_metrics(script, smoke_run)
    problems: dict[str, list[str]] = {}
    original_savefig = matplotlib.figure.Figure.savefig

    def checked_savefig(fig, fname, *args, **kwargs):
        problems[Path(str(fname)).name] = figure_problems(fig)
        return original_savefig(fig, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", checked_savefig)
    module = load_chapter(chapter_number(script))
    for where in ("epoch 1:0", "epoch 3:0"):
        monkeypatch.setenv("TUTORIAL_SIGINT_AT", where)
        with pytest.raises(SystemExit) as exit_info:
            module.run(module.main, module.Config, argv=smoke_args(tmp_path, "--resume"))
        out, err = capsys.readouterr()
        assert exit_info.value.code == 130, where + out[-2000:] + err[-2000:]
        assert "중단" in out + err and "Traceback" not in out + err  # 한 줄 알림, traceback 없음
        assert not (tmp_path / "metrics.json").exists()  # 정말 학습 도중에 멈췄는지
        if where == "epoch 1:0":
            assert "처음부터 시작합니다" in out  # 빈 폴더의 --resume: 오류가 아니라 처음부터
    monkeypatch.delenv("TUTORIAL_SIGINT_AT")

    module.run(module.main, module.Config, argv=smoke_args(tmp_path, "--resume"))
    assert "[이어하기]" in capsys.readouterr().out
    assert metrics_of(tmp_path) == expected
    _, reference_dir = smoke_run(script)  # 마지막 epoch 의 가중치와 최적화기 상태까지 같아야 함
    assert_same_state(final_state(reference_dir), final_state(tmp_path), "last.pt")
    assert problems, "그림을 하나도 저장하지 않았습니다"
    assert not {name: found for name, found in problems.items() if found}


def test_ctrl_c_in_a_real_process_is_one_line_and_exit_130(tmp_path):
    """터미널에서 친 것과 같은 새 프로세스: 학습 도중 진짜 SIGINT → 종료 코드 130, traceback 없이
    '중단…' 한 줄로 끝남, metrics.json 없음, epoch 0 의 last.pt 는 남음 (이어하기 재료). 01장으로."""
    script = CHAPTERS[0]
    stopped = run_script(script, *smoke_args(tmp_path), env={"TUTORIAL_SIGINT_AT": "epoch 1:0"})
    assert stopped.returncode == 130, stopped.stdout[-2000:] + stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr + stopped.stdout
    last_line = (stopped.stdout + stopped.stderr).strip().splitlines()[-1]
    assert last_line.startswith("중단"), stopped.stdout[-2000:]
    assert not (tmp_path / "metrics.json").exists() and (tmp_path / "last.pt").exists()


# --- 잘못된 입력 표 ----------------------------------------------------------------------------
def write_text(path: Path, text: str = "hello, I am not a checkpoint\n") -> None:
    path.write_text(text, encoding="utf-8")


def copy_checkpoint(source: Path, target: Path, *, truncate: bool = False,
                    chapter: str | None = None) -> None:
    if truncate:
        data = source.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif chapter is not None:  # 다른 장의 체크포인트: 형식은 맞고 주인만 다름
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        checkpoint["chapter"] = chapter
        torch.save(checkpoint, target)
    else:
        shutil.copy(source, target)


# (이름, 추가 플래그, 준비: (smoke 출력 폴더, 새 출력 폴더) → None, 오류 문장에 있어야 할 말)
BAD_INPUTS = [
    ("lr-nan", ["--lr", "nan"], None, "--lr"),
    ("lr-inf", ["--lr", "inf"], None, "--lr"),
    ("epochs-zero", ["--epochs", "0"], None, "--epochs"),  # 기본이 0(자동 예산)인 장은 건너뜀
    ("epochs-negative", ["--epochs", "-1"], None, "--epochs"),
    ("batch-size-zero", ["--batch-size", "0"], None, "--batch-size"),
    ("unknown-flag", ["--no-such-flag"], None, "--no-such-flag"),
    ("device-cuda", ["--device", "cuda"], None, "cuda"),
    ("resume-empty", ["--resume"], lambda smoke, new: (new / "last.pt").write_bytes(b""), "last.pt"),
    ("resume-text", ["--resume"], lambda smoke, new: write_text(new / "last.pt"), "last.pt"),
    ("resume-truncated", ["--resume"],
     lambda smoke, new: copy_checkpoint(smoke / "last.pt", new / "last.pt", truncate=True), "last.pt"),
    ("resume-other-chapter", ["--resume"],
     lambda smoke, new: copy_checkpoint(smoke / "last.pt", new / "last.pt", chapter="00_other"), "00_other"),
    ("resume-other-seed", ["--resume", "--seed", "7"],
     lambda smoke, new: copy_checkpoint(smoke / "last.pt", new / "last.pt"), "seed"),
    ("predict-no-checkpoint", ["--predict", "{predict}"], None, "best.pt"),
    ("predict-truncated", ["--predict", "{predict}"],
     lambda smoke, new: copy_checkpoint(smoke / "best.pt", new / "best.pt", truncate=True), "best.pt"),
    ("predict-text", ["--predict", "{predict}"], lambda smoke, new: write_text(new / "best.pt"), "best.pt"),
]


def run_in_process(script: Path, argv: list[str], capsys) -> tuple[int, str]:
    module = load_chapter(chapter_number(script))
    with pytest.raises(SystemExit) as exit_info:
        module.run(module.main, module.Config, argv=argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
@pytest.mark.parametrize("script", CHAPTERS, ids=IDS)
def test_bad_input_is_one_line_and_exit_2(script, case, smoke_run, tmp_path, capsys):
    name, flags, prepare, must_mention = case
    if name == "device-cuda" and torch.cuda.is_available():
        pytest.skip("CUDA 가 있는 기계에서는 --device cuda 가 맞는 입력")
    if name == "epochs-zero" and auto_epochs(load_chapter(chapter_number(script)).Config):
        pytest.skip("이 장에서 --epochs 0 은 '학습 예산에서 자동'이라는 맞는 입력")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if prepare is not None:
        result, smoke_dir = smoke_run(script)
        assert result.returncode == 0, result.stderr[-2000:]
        prepare(smoke_dir, out_dir)
    before = sorted(p.name for p in out_dir.iterdir())
    predict = PREDICT_INPUT.get(chapter_number(script), str(tmp_path / "input.png"))
    argv = smoke_args(out_dir) + [flag.format(predict=predict) for flag in flags]
    code, err = run_in_process(script, argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("오류: "), err
    assert must_mention in lines[0], lines[0]
    if name.startswith(("lr-", "epochs-", "batch-", "unknown", "device")):  # 학습 전에 멈췄는지
        assert sorted(p.name for p in out_dir.iterdir()) == before


@pytest.mark.parametrize("script", CHAPTERS, ids=IDS)
def test_out_dir_that_cannot_be_used_is_refused_before_work(script, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    write_text(a_file)
    for out_dir, words in ((a_file, "파일"), (Path("/proc/no_such_dir/out"), "쓸 수 없습니다")):
        argv = ["--smoke", "--data", "offline", "--device", "cpu", "--out-dir", str(out_dir)]
        code, err = run_in_process(script, argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and words in lines[0], err


# --- 노트북에서 셀마다 실행 ---------------------------------------------------------------------
def test_chapter_runs_as_a_notebook(tmp_path):
    """jupytext 로 01장을 노트북으로 바꿔 ipykernel 에서 실행: 커널의 argv 를 플래그로 읽지 않아야 함."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    notebook = jupytext.read(ROOT / "01_pytorch_basics.py")
    # 마지막 셀(run(main, Config)) 앞에서 Config 의 기본값만 점검용으로 바꿉니다: 노트북에서는
    # 플래그를 줄 수 없으니 학습자도 이렇게(또는 Config 를 고쳐) 설정을 바꿉니다.
    smoke_defaults = (
        "from dataclasses import dataclass\n\n"
        "@dataclass\nclass Config(Config):\n"
        "    smoke: bool = True\n    data: str = 'offline'\n    device: str = 'cpu'\n"
        f"    out_dir: str = {str(tmp_path)!r}\n"
    )
    notebook.cells.insert(len(notebook.cells) - 1, jupytext.formats.nbformat.v4.new_code_cell(smoke_defaults))
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    record = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert record["config"]["smoke"] is True and record["script"] == "01_pytorch_basics.py"


# --- 장의 모양 (DESIGN.md 'One script, one shape' 2·6·7·8) ---------------------------------------
MAX_UTILS_NAMES = 10  # "a short, explicit list from utils (about ten names at most)"
MAX_MAIN_LINES = 62  # "main() ... about 60 lines at most" (def 줄과 docstring 포함, 빈 줄 포함)


def chapter_shape(path: Path) -> dict:
    """장 파일을 실행하지 않고 구문 트리(ast)로 읽어 모양을 잽니다."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
             and (node.module or "").split(".")[0] == "utils" for alias in node.names]
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    handlers = [handler for node in ast.walk(main) if isinstance(node, ast.Try) for handler in node.handlers]
    guard = tree.body[-1]
    return {
        "utils_names": names,
        "main_lines": main.end_lineno - main.lineno + 1,
        "run_block_catches_ctrl_c": any(isinstance(h.type, ast.Name) and h.type.id == "KeyboardInterrupt"
                                        for h in handlers),
        "entry": ast.unparse(guard) if isinstance(guard, ast.If) else "",
    }


@pytest.mark.parametrize("script", CHAPTERS, ids=IDS)
def test_chapter_has_the_contract_shape(script):
    """utils 에서 가져오는 이름은 10개 이하, main() 은 목차 길이, run 블록은 main 에 보이고 Ctrl+C 를
    스스로 받으며, 스크립트 끝은 `run(main, Config)` 하나. 이름이 늘거나 main 이 길어지면 빨갛게."""
    shape = chapter_shape(script)
    assert len(shape["utils_names"]) <= MAX_UTILS_NAMES, shape["utils_names"]
    assert shape["main_lines"] <= MAX_MAIN_LINES, shape["main_lines"]
    assert shape["run_block_catches_ctrl_c"]
    assert shape["entry"] == "if __name__ == '__main__':\n    run(main, Config)"
