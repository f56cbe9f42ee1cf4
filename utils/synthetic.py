"""절차적으로 만든(procedural) 데이터 세트: 정답이 정확하고, 같은 seed 면 항상 같습니다.

네트워크가 없어도 각 장이 '진짜 학습 문제'를 풀 수 있게 합니다. 학습하지 않은 모델은
이 데이터에서 우연 수준(chance level)의 점수를 냅니다. 장마다 한 구역(section)입니다.
"""

from __future__ import annotations
