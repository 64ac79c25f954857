import numpy as np
import pytest

from shared_model.media.crop import NoFaceError, StreamCropper, clip_crop, crop_image, detect_face, detect_face_near


def test_face_found_and_crop_inside_frame(face_frames):
    crop = clip_crop(face_frames)
    assert crop.x >= 0 and crop.y >= 0 and crop.x + crop.size <= 256 and crop.y + crop.size <= 256
    cx, cy, side = detect_face(face_frames[0])
    # The crop holds the whole face box.
    assert crop.x <= cx - side / 2 and cx + side / 2 <= crop.x + crop.size
    assert crop.y <= cy - side / 2 and cy + side / 2 <= crop.y + crop.size
    assert crop.apply(face_frames[0], 64).shape == (64, 64, 3)


def test_no_face_is_a_clear_error():
    blank = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(NoFaceError):
        crop_image(blank, 64)
    with pytest.raises(NoFaceError):
        clip_crop([blank, blank])


def test_stream_crop_waits_for_a_face_then_holds_steady(face_frames):
    cropper = StreamCropper(64, every=1)
    assert cropper(np.zeros((256, 256, 3), np.uint8)) is None
    assert cropper.frames_without_face == 1
    crops = []
    for f in face_frames[:20]:
        assert cropper(f).shape == (64, 64, 3)
        crops.append(cropper.crop)
    # Small head motion does not move the crop.
    assert len({(c.x, c.y, c.size) for c in crops[5:]}) <= 2


def test_stream_crop_follows_a_large_move(face_frames):
    cropper = StreamCropper(64, every=1)
    cropper(face_frames[0])
    start = cropper.crop
    shifted = np.zeros((256, 384, 3), np.uint8)
    shifted[:, 128:] = face_frames[0]
    for _ in range(15):
        cropper(shifted)
    assert cropper.crop.x > start.x + 80


def test_tracking_finds_the_face_near_where_it_was(face_frames):
    """The cheap search around the last face agrees with the whole-frame search, and reports a face that left
    its window as not there (the cropper then searches the whole frame)."""
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:356, 300:556] = face_frames[0]
    full = detect_face(frame)
    near = detect_face_near(frame, full)
    assert near is not None
    assert np.abs(np.array(near) - np.array(full)).max() < 0.1 * full[2], (near, full)
    moved = np.zeros_like(frame)
    moved[100:356, 0:256] = face_frames[0]
    assert detect_face_near(moved, full) is None
    cropper = StreamCropper(64, every=1)
    cropper(frame)
    for _ in range(15):
        cropper(moved)
    assert cropper.crop.x + cropper.crop.size <= 300
