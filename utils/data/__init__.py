"""실제 데이터 불러오기(오프라인 대체 포함), 분야별 모듈로 나뉘어 있습니다.

- common.py : 데이터 정책(auto / real / offline), 시간 제한이 있는 내려받기
- vision.py : MNIST, Fashion-MNIST, sklearn digits (28x28)
- tabular.py: California housing, sklearn diabetes
- color_images.py: CIFAR-10, 내 이미지 폴더 (32x32 컬러)
- text.py: IMDB 영화 리뷰 (aclImdb), 리뷰 CSV (text,label), 문장 극성 pos/neg 줄 파일
- timeseries.py: matplotlib 의 GOOG 주가, Yahoo/Nasdaq 형식 CSV
- detection.py: YOLO 형식 폴더, Pascal VOC 폴더, 레터박스, 절차적 다중 물체 도형 (06)
- images.py: 이미지 폴더(CelebA 등)를 32/64 픽셀로 (07)
- translation.py: Multi30k 독→영, 절차적 영어→한국어 문장 쌍 (08)
- segmentation.py: images/+masks/ 폴더(원래 해상도 그대로, 선택: fov/ 시야 마스크), Oxford-IIIT Pet
  (trimap → 동물/배경), 절차적 도형과 정확한 마스크 (09)
- captcha.py: 파일 이름이 정답인 캡차 폴더, 시드로 재현되는 즉석 캡차 (10)
- superres.py: T91/Set5/Set14 폴더, 내 사진 폴더, 설치된 라이브러리의 사진, 무작위 패치 (12)
"""
