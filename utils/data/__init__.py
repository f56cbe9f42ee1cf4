"""실제 데이터 불러오기(오프라인 대체 포함), 분야별 모듈로 나뉘어 있습니다.

- common.py : 데이터 정책(auto / real / offline), 시간 제한이 있는 내려받기
- vision.py : MNIST, Fashion-MNIST, sklearn digits (28x28)
- tabular.py: California housing, sklearn diabetes
- color_images.py: CIFAR-10, 내 이미지 폴더 (32x32 컬러)
- text.py: IMDB 영화 리뷰 (aclImdb)
- timeseries.py: matplotlib 의 GOOG 주가, Yahoo/Nasdaq 형식 CSV
"""
