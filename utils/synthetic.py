"""절차적으로 만든(procedural) 데이터 세트: 정답이 정확하고, 같은 seed 면 항상 같습니다.

네트워크가 없어도 각 장이 '진짜 학습 문제'를 풀 수 있게 합니다. 학습하지 않은 모델은
이 데이터에서 우연 수준(chance level)의 점수를 냅니다. 장마다 한 구역(section)입니다.
"""

from __future__ import annotations


# ---- 05장: 계절성이 있는 잡음 섞인 점검 계열(sanity series) ----
def noisy_seasonal_series(length: int = 1000, seed: int = 0, level: float = 10.0,
                          periods: tuple[float, ...] = (12.0, 30.0),
                          amplitudes: tuple[float, ...] = (1.0, 0.5),
                          noise: float = 0.1):
    """주기가 다른 사인파 몇 개 + 가우스 잡음: 배울 것이 분명히 있는 시계열. (length,) float64.

    x_t = level + Σ_k a_k·sin(2π·t / P_k + φ_k) + ε_t,   ε_t ~ N(0, noise²)
    위상 φ_k 와 잡음은 seed 로만 정해집니다 (같은 seed → 같은 계열).
    '내일 = 오늘'(persistence)은 사인파의 하루치 변화만큼 틀리지만, 창 안의 주기를 알아챈
    모델은 잡음 수준(noise)까지 오차를 줄일 수 있습니다. level 은 값이 모두 양수가 되게 해
    MAPE 가 정의되도록 합니다.
    """
    import numpy as np  # 장마다 구역을 덧붙이는 파일이라 필요한 곳에서 불러옵니다

    if len(periods) != len(amplitudes):
        raise ValueError("periods 와 amplitudes 의 길이가 같아야 합니다")
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    phases = rng.uniform(0.0, 2 * np.pi, size=len(periods))
    signal = sum(a * np.sin(2 * np.pi * t / p + phi) for a, p, phi in zip(amplitudes, periods, phases))
    return level + signal + rng.normal(0.0, noise, size=length)
