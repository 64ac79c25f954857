"""``sender --output FILE``: the messages of a call written to a file instead of a peer."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from shared_model.wire.messages import encode_control
from shared_model.wire.records import RecordWriter

from .capture import FrameSource
from .pipeline import FramePipeline

log = logging.getLogger(__name__)


def write_call_file(source: FrameSource, pipeline: FramePipeline, path: str | Path) -> None:
    """Every frame of the source, processed in order (no real-time pacing for a file, nothing dropped). A file
loses nothing, so every frame counts as acknowledged once written."""
    counts = pipeline.counts
    with RecordWriter(path) as out:
        out.control(encode_control("hello", **pipeline.hello()))
        try:
            for item in source.frames(threading.Event()):
                counts.captured += 1
                frame = pipeline(item)
                if frame is not None:
                    out.frame(frame.data)
                    pipeline.sent(frame)
                    pipeline.acknowledge(frame.seq)
        except KeyboardInterrupt:  # a camera runs until Ctrl-C: end the file properly
            log.info("interrupted")
        out.control(encode_control("stats", crop=pipeline.crop, **counts.as_dict()))
        out.control(encode_control("bye", reason="source ended", last_seq=counts.captured - 1))
    log.info("wrote %d frame messages (%d bytes) to %s; %s", counts.sent, counts.payload_bytes, path, counts.as_dict())
