"""모든 그림: PNG 파일로 저장하고, `--show` 일 때만 화면에도 띄웁니다.

백엔드(backend)는 바꾸지 않습니다: 화면이 없는 서버·CI·SSH 에서는 matplotlib 이 스스로 Agg 를
고르고, 저장은 어느 백엔드에서나 됩니다.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

# 그림 속 글자는 영어로 씁니다: 기본 글꼴(DejaVu Sans)에 한글이 없어 어느 컴퓨터에서나
# 같은 그림이 나오게 하려는 것입니다. 설명은 코드의 한글 주석에 있습니다.


def save_figure(fig: plt.Figure, path: Path, show: bool = False) -> Path:
    """그림을 PNG 로 저장하고, show 이면 창을 띄운 뒤 닫습니다."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    if show:
        plt.show()
    plt.close(fig)
    return path


def plot_history(rows: list[dict], path: Path, show: bool = False,
                 title: str = "Training history", metrics: list[str] | None = None,
                 metric_label: str = "accuracy") -> Path:
    """history 의 손실(loss) 곡선과 지표 곡선. `rows` 는 `History.rows`.

    이름에 'loss' 가 든 열은 왼쪽, 'acc' 가 든 열(또는 `metrics` 로 고른 열, 예: ["val_rmse"])은
    오른쪽 그래프에 그립니다.
    """
    epochs = [row["epoch"] for row in rows]
    keys = list(dict.fromkeys(k for row in rows for k in row if k != "epoch"))
    loss_keys = [k for k in keys if "loss" in k]
    acc_keys = [k for k in keys if "acc" in k] if metrics is None else [k for k in metrics if k in keys]
    panels = [(loss_keys, "loss"), (acc_keys, metric_label)]
    panels = [(group, label) for group, label in panels if group]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (group, label) in zip(axes[0], panels):
        for key in group:
            ax.plot(epochs, [row.get(key, np.nan) for row in rows], marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # 2.5 epoch 같은 눈금은 없음
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return save_figure(fig, path, show)


def plot_image_grid(images: torch.Tensor, titles: list[str], path: Path, show: bool = False,
                    title: str = "", columns: int = 8, mean=None, std=None,
                    title_colors: list[str] | None = None) -> Path:
    """이미지 격자. images: (N, C, H, W) 텐서(C=1 또는 3), titles: 이미지마다 한 줄.

    mean/std 를 주면 정규화를 되돌려 원래 밝기로 그립니다. title_colors 로 맞음(green)
    /틀림(red)을 표시할 수 있습니다.
    """
    images = images.detach().float().cpu()
    if mean is not None and std is not None:
        mean_t = torch.as_tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
        std_t = torch.as_tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
        images = images * std_t + mean_t
    count = max(len(images), 1)
    columns = min(columns, count)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        image = images[index]
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray")
        else:
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())  # (C,H,W) → (H,W,C)
        color = title_colors[index] if title_colors else "black"
        ax.set_title(titles[index], fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, show)


def plot_confusion_matrix(matrix, class_names: list[str], path: Path, show: bool = False,
                          title: str = "Confusion matrix") -> Path:
    """혼동 행렬(confusion matrix): 행 = 정답, 열 = 예측. seaborn heatmap."""
    import seaborn as sns  # 쓸 때만 import: scipy.stats 까지 불러 1~2초 걸림 (학습만 하는 실행은 안 씀)

    matrix = np.asarray(matrix)
    size = max(5.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=class_names, yticklabels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path, show)


def plot_heatmap(table, path: Path, show: bool = False, title: str = "", fmt: str = ".3f",
                 xlabel: str = "", ylabel: str = "") -> Path:
    """pandas DataFrame(행·열 이름이 축 눈금)을 값이 적힌 heatmap 으로."""
    import seaborn as sns  # 쓸 때만 import (위와 같은 까닭)

    fig, ax = plt.subplots(figsize=(1.3 * table.shape[1] + 2.5, 0.7 * table.shape[0] + 2))
    sns.heatmap(table, annot=True, fmt=fmt, cmap="viridis", ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save_figure(fig, path, show)


def plot_curves(curves: dict[str, list[float]], path: Path, show: bool = False, title: str = "",
                xlabel: str = "epoch", ylabel: str = "", logy: bool = False) -> Path:
    """이름 → 값 목록 여러 개를 한 그래프에 (예: 최적화 기법별 손실 곡선)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    if "epoch" in xlabel:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # 정수 epoch 눈금
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, show)


def plot_prediction(image: torch.Tensor, probabilities: torch.Tensor, classes: list[str], path: Path,
                    show: bool = False, title: str = "", mean: float = 0.0, std: float = 1.0) -> Path:
    """--predict 결과 한 장: 모델이 보는 흑백 입력 (1, 1, H, W) 과 클래스별 확률 막대 (01·02 장).

    mean/std 를 주면 정규화를 되돌려 그립니다. 이름이 긴 클래스(Fashion-MNIST)는 눕혀 겹치지 않게.
    """
    fig, (ax_image, ax_bars) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1, 1.8]})
    ax_image.imshow((image[0, 0] * std + mean).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    ax_image.set_title("Input as the model sees it", fontsize=10)
    ax_image.axis("off")
    ax_bars.bar(range(len(classes)), probabilities.cpu().numpy())
    long_names = max(len(str(name)) for name in classes) > 2
    ax_bars.set_xticks(range(len(classes)), classes, rotation=45 if long_names else 0,
                       ha="right" if long_names else "center")
    ax_bars.set_ylim(0, 1)
    ax_bars.set_xlabel("class")
    ax_bars.set_ylabel("probability")
    ax_bars.set_title("Class probabilities", fontsize=10)
    best = int(probabilities.argmax())
    fig.suptitle(f"Prediction: {classes[best]} ({probabilities[best]:.0%}){title}", fontsize=11)
    return save_figure(fig, path, show)
