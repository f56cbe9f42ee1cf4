"""그림을 사람이 읽을 수 있는지: 제목·축 이름이 그림 밖으로 나가거나 서로 겹치면 문제로 보고합니다.

matplotlib 은 `canvas.draw()` 뒤에 글자마다 화면 위 상자(window extent)를 알려 줍니다. 그 상자로
- 제목(suptitle, 축 제목), 축 이름(x/y label), 그림 글자(fig.text)가 그림 밖으로 잘리는지,
- 그것들끼리, 또 다른 축의 눈금 글자(tick label)와 겹치는지 확인합니다.
"""

from __future__ import annotations

import matplotlib.figure


def _visible(text) -> bool:
    return text is not None and text.get_visible() and text.get_text().strip() != ""


def _named_texts(fig: matplotlib.figure.Figure) -> list[tuple[str, object, object]]:
    """(설명, 글자, 그 글자가 속한 축 또는 None)."""
    texts = []
    if fig._suptitle is not None and _visible(fig._suptitle):
        texts.append(("suptitle", fig._suptitle, None))
    texts += [(f"fig.text {t.get_text()!r}", t, None) for t in fig.texts
              if _visible(t) and t is not fig._suptitle]  # suptitle 도 fig.texts 에 들어 있음
    for index, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        for kind, text in (("title", ax.title), ("left title", ax._left_title),
                           ("right title", ax._right_title), ("xlabel", ax.xaxis.label),
                           ("ylabel", ax.yaxis.label)):
            if _visible(text):
                texts.append((f"axes[{index}] {kind} {text.get_text()!r}", text, ax))
    return texts


def figure_problems(fig: matplotlib.figure.Figure, tolerance: float = 1.0) -> list[str]:
    """읽기 어려운 곳을 문장 목록으로 (없으면 빈 목록)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    problems = []
    texts = [(name, text, ax, text.get_window_extent(renderer)) for name, text, ax in _named_texts(fig)]
    for name, _, _, box in texts:
        if box.x0 < -tolerance or box.y0 < -tolerance or box.x1 > width + tolerance \
                or box.y1 > height + tolerance:
            problems.append(f"{name} 가 그림 밖으로 나감")
    for i, (name_a, _, _, box_a) in enumerate(texts):
        for name_b, _, _, box_b in texts[i + 1:]:
            if _overlap(box_a, box_b) > tolerance:
                problems.append(f"{name_a} 와 {name_b} 가 겹침")
    for name, _, ax, box in texts:  # 다른 축의 눈금 글자와 겹침 (아래 줄 제목이 윗줄 눈금을 덮는 경우)
        for other in fig.axes:
            if other is ax or not other.get_visible() or not other.axison:  # axis("off") 면 눈금이 없음
                continue
            for tick in _drawn_tick_labels(other):
                if _overlap(box, tick.get_window_extent(renderer)) > tolerance:
                    problems.append(f"{name} 가 다른 축의 눈금 {tick.get_text()!r} 과 겹침")
                    break
    for index, ax in enumerate(fig.axes):  # epoch 축의 눈금은 정수 (2.5 epoch 는 없음)
        if "epoch" in ax.get_xlabel().lower():
            low, high = sorted(ax.get_xlim())
            ticks = [t for t in ax.get_xticks() if low - 1e-9 <= t <= high + 1e-9]
            if any(abs(t - round(t)) > 1e-9 for t in ticks):
                problems.append(f"axes[{index}] 의 epoch 눈금이 정수가 아님: {list(ticks)}")
    return problems


def _drawn_tick_labels(ax) -> list:
    """그려지는 눈금 글자만: 보이는 범위(view interval) 안의 눈금 (밖의 눈금은 그리지 않음)."""
    labels = []
    for axis in (ax.xaxis, ax.yaxis):
        if not axis.get_visible():
            continue
        low, high = sorted(axis.get_view_interval())
        for tick in axis.get_major_ticks():
            if low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                labels += [label for label in (tick.label1, tick.label2) if _visible(label)]
    return labels


def _overlap(a, b) -> float:
    """두 상자가 겹치는 넓이의 변 길이 (겹치지 않으면 0)."""
    dx = min(a.x1, b.x1) - max(a.x0, b.x0)
    dy = min(a.y1, b.y1) - max(a.y0, b.y0)
    return min(dx, dy) if dx > 0 and dy > 0 else 0.0
