"""여러 장이 함께 쓰는 합성곱 블록(building block). 03장에서 처음부터 배우는 것과 같은 블록입니다.

03장(CNN)이 이 블록들을 직접 만들며 가르치고, 06(YOLO)·09(U-Net)·10(CRNN) 장은 여기 것을
가져다 씁니다. tests/test_ch03.py 가 03장의 것과 같은 계산을 하는지 확인합니다.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv → BatchNorm → ReLU. 패딩 kernel_size // 2 라 stride 1 이면 가로세로 크기를 유지합니다.

    바로 뒤의 BatchNorm 이 평균을 빼므로 합성곱의 편향(bias)은 쓸모가 없어 bias=False.
    입력 (B, in, H, W) → 출력 (B, out, ⌈H/stride⌉, ⌈W/stride⌉)
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                  bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """잔차 블록(residual block): 출력 = ReLU(f(x) + shortcut(x)), f = Conv→BN→ReLU→Conv→BN.

    채널 수나 stride 가 바뀌면 지름길(shortcut)을 1x1 합성곱 + BN 으로 모양을 맞춥니다.
    stride 는 (세로, 가로) 튜플도 됩니다: CRNN 처럼 높이만 줄이고 너비(시간 축)는 지킬 때 (2, 1).
    입력 (B, in, H, W) → 출력 (B, out, H/stride_h, W/stride_w)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int | tuple[int, int] = 1):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x) + self.shortcut(x))
