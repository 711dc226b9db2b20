"""The child side of ``gateway.decode_pool``: run upload checks on request, one at a time.

Started as ``python -m gateway.decode_worker '<policy JSON>'``. Frames on stdin are
``<u32 total length><u8 format length><format><image bytes>``; each answer on the
protocol channel is ``<u32 length><JSON>``: ``{"ok": true}`` or
``{"error": class name, "code": …, "message": …}``. A ``video`` job carries
``<u32 length><JSON sampling and limits>`` before the video's bytes, and its answer is the
JSON (``info`` and each frame's timestamp and size) followed by ``<u32 length><the frames'
JPEG bytes, concatenated>`` (``visionserve.video``). The process runs at idle priority
(``SCHED_IDLE``; nice 19 where that is refused): it decodes with the CPU that the event loop,
the other keys' requests and Triton leave, so one key's costly uploads wait for spare cores
instead of taking them (nice 10 only weighted the scheduler 1:10). It caps its address space (a decode that
slipped past the pixel limits fails with MemoryError instead of taking the host), and moves
stdout to stderr so that nothing a library prints can corrupt a frame. It exits when stdin
closes: a gateway worker that dies leaves no decode process behind.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys
from typing import BinaryIO

from gateway.uploads import UploadPolicy, check_image
from visionserve.errors import ImageError

__all__ = ["main", "serve"]

_HEAD = struct.Struct("<I")
#: The nice increment of a decode process where SCHED_IDLE is not available.
NICE_INCREMENT = 19


def lower_priority() -> str:
    """Run this process only on CPU nobody else wants; returns what was applied."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except (AttributeError, OSError):  # not Linux, or a sandbox that refuses it
        os.nice(NICE_INCREMENT)
        return f"nice +{NICE_INCREMENT}"


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _answer(data: bytes, fmt: str, policy: UploadPolicy) -> dict[str, object]:
    try:
        check_image(data, fmt, policy)
    except ImageError as exc:
        return {"error": type(exc).__name__, "code": getattr(exc, "code", "invalid_image"), "message": str(exc)}
    except MemoryError:
        return {"error": "ImageTooLarge", "code": "image_too_costly", "message": "the image needs too much memory"}
    except Exception as exc:  # a decoder bug on crafted data is still the upload's fault
        return {"error": "BadImage", "code": "corrupt_image", "message": f"the {fmt} image does not decode: {exc}"}
    return {"ok": True}


def _video(body: bytes) -> tuple[dict[str, object], bytes]:
    from visionserve.video import Sampling, VideoLimits, sample_video

    (length,) = _HEAD.unpack_from(body)
    params = json.loads(body[_HEAD.size : _HEAD.size + length])
    data = body[_HEAD.size + length :]
    try:
        info, frames = sample_video(
            data, params["container"], Sampling(**params["sampling"]), VideoLimits(**params["limits"])
        )
    except ImageError as exc:
        return {"error": type(exc).__name__, "code": getattr(exc, "code", "invalid_video"), "message": str(exc)}, b""
    except MemoryError:
        return {"error": "VideoTooLarge", "code": "video_too_large", "message": "the video needs too much memory"}, b""
    except Exception as exc:  # a demuxer bug on crafted data is still the upload's fault
        return {"error": "InvalidVideo", "code": "corrupt_video", "message": f"the video does not decode: {exc}"}, b""
    meta = [{"t_s": f.t_s, "keyframe": f.keyframe, "size": len(f.jpeg)} for f in frames]
    return {"ok": True, "info": info.to_json(), "frames": meta}, b"".join(f.jpeg for f in frames)


def serve(inp: BinaryIO, out: BinaryIO, policy: UploadPolicy) -> None:
    """Answer frames from ``inp`` on ``out`` until ``inp`` closes."""
    while True:
        head = _read_exact(inp, _HEAD.size)
        if head is None:
            return
        body = _read_exact(inp, _HEAD.unpack(head)[0])
        if body is None:
            return
        fmt_len = body[0]
        fmt, data = body[1 : 1 + fmt_len].decode("ascii"), body[1 + fmt_len :]
        del body
        if fmt == "video":
            answer, blob = _video(data)
            reply = json.dumps(answer).encode()
            out.write(_HEAD.pack(len(reply)) + reply + _HEAD.pack(len(blob)))
            out.write(blob)
        else:
            reply = json.dumps(_answer(data, fmt, policy)).encode()
            out.write(_HEAD.pack(len(reply)) + reply)
        out.flush()


def main(argv: list[str] | None = None) -> None:
    """Entry point of a decode process (argv: the policy as JSON, the address-space cap in bytes)."""
    args = sys.argv[1:] if argv is None else argv
    policy = UploadPolicy(**json.loads(args[0]))
    if len(args) > 1 and int(args[1]) > 0:
        limit = int(args[1])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    lower_priority()
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to the log, not the protocol
    out.write(_HEAD.pack(0))  # ready: the parent starts timing jobs from here
    out.flush()
    serve(sys.stdin.buffer, out, policy)


if __name__ == "__main__":
    main()
