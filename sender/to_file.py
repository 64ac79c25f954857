"""``sender --output FILE``: the messages of a call written to a file instead of a peer."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from shared_model.wire.control import Bye, Picture, PictureChunk, Stats, decode_control
from shared_model.wire.pictures import PictureInbox
from shared_model.wire.records import RecordWriter

from .capture import FrameSource
from .pipeline import FramePipeline

log = logging.getLogger(__name__)


def _write_pictures(pipeline: FramePipeline, out: RecordWriter, inbox: PictureInbox) -> None:
    """Every picture message waiting, each picture acknowledged once written (``inbox`` plays the receiver)."""
    outbox = pipeline.pictures.outbox
    while (message := outbox.pending()) is not None:
        out.control(message)
        outbox.sent(message)
        pipeline.counts.picture_message_bytes += len(message)
        msg = decode_control(message)
        if isinstance(msg, Picture):
            inbox.announce(msg)
        elif isinstance(msg, PictureChunk) and (complete := inbox.chunk(msg)) is not None:
            outbox.acknowledged(inbox.hold(complete[0]))


def write_call_file(source: FrameSource, pipeline: FramePipeline, path: str | Path) -> None:
    """Every frame of the source, processed in order (no real-time pacing, no budget, nothing dropped). A file
loses nothing, so every frame and picture counts as acknowledged once written. A sender that sends no pictures
writes frames naming the receiver's own (0)."""
    counts = pipeline.counts
    inbox = PictureInbox(pipeline.pictures.outbox.max_pictures)
    # With no pictures of its own to send, a file is for a receiver that has its own (receiver --refs).
    pipeline.pictures.own_pictures = not pipeline.pictures.sends_pictures
    with RecordWriter(path) as out:
        out.control(pipeline.hello().encode())
        _write_pictures(pipeline, out, inbox)
        try:
            for item in source.frames(threading.Event()):
                counts.captured += 1
                frame = pipeline(item)
                if frame is not None:  # before the pictures it queued: one may replace the picture it names
                    out.frame(frame.data)
                    pipeline.sent(frame)
                    pipeline.acknowledge(frame.seq)
                _write_pictures(pipeline, out, inbox)
        except KeyboardInterrupt:  # a camera runs until Ctrl-C: end the file properly
            log.info("interrupted")
        out.control(Stats(pipeline.crop, pipeline.stats()).encode())
        out.control(Bye("source ended", counts.captured - 1).encode())
    log.info("wrote %d frame messages (%d bytes) and %d pictures (%d bytes) to %s; %s", counts.sent,
             counts.payload_bytes, pipeline.pictures.counts.pictures, counts.picture_message_bytes, path,
             pipeline.stats())
