"""Messages on the wire: the keypoint coding, frame and control messages, call files."""
