"""Messages on the wire: the keypoint coding, frame and control messages, reference pictures in transfer, the
sender's budget, call files. No torch, no asyncio, no aiortc: everything here is I/O-free and imports only
``shared_model.errors`` from outside."""
