"""``--display``: a window showing the rebuilt frames (needs an OpenCV build with GUI support)."""
from __future__ import annotations

import cv2
import numpy as np


class DisplayUnavailable(RuntimeError):
    """This OpenCV build cannot open windows."""


class Display:
    """Shows frames from the event loop thread (GUI toolkits want one thread)."""

    def __init__(self, title: str = "receiver", scale: int = 3) -> None:
        self.title, self.scale = title, scale
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise DisplayUnavailable(
                "--display needs OpenCV with GUI support; opencv-python-headless has none "
                "(replace it with opencv-python, or drop --display and use --record)") from exc

    def show(self, image: np.ndarray) -> None:
        big = cv2.resize(image, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_CUBIC)
        cv2.imshow(self.title, cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
        cv2.waitKey(1)

    def close(self) -> None:
        cv2.destroyWindow(self.title)
