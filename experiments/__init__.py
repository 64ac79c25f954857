"""Experiments: the keypoint codec against H.264 / VP8 / VP9 on the same frames (rate-distortion), and real
calls under injected loss and jitter. ``python -m experiments --help``; results in docs/experiments.md."""
