"""A few decode processes that run the costly upload checks, each killed when it overruns.

Why processes and not threads: Pillow's RLE BMP decoder is pure Python (it holds the GIL, so a
thread stalls the event loop anyway), and a thread that runs past its deadline cannot be
stopped — it keeps decoding, and its core, long after the caller got an answer. A process
can be killed. Each worker is ``python -m gateway.decode_worker`` on two pipes, driven with
asyncio streams: no thread of the gateway waits on it, and a job that overruns
``timeout_s`` has its process SIGKILLed, replaced in the background, and its caller answered
``413 decode_timeout``. Workers start lazily (or with ``start``), run at a lower priority,
and exit when the gateway closes their stdin or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import sys
import time
from dataclasses import asdict, dataclass

from gateway.errors import BadImage, ImageTooLarge, UnsupportedImage, UpstreamUnavailable
from gateway.uploads import UploadPolicy
from visionserve.errors import ImageError, InvalidVideo, UnsupportedVideo, VideoTooLarge
from visionserve.video import Frame, Sampling, VideoInfo, VideoLimits

__all__ = ["DEFAULT_MEMORY_BYTES", "DecodePool"]

log = logging.getLogger("visionserve.gateway.decode_pool")
_HEAD = struct.Struct("<I")
_ERRORS: dict[str, type[ImageError]] = {
    "BadImage": BadImage,
    "ImageTooLarge": ImageTooLarge,
    "UnsupportedImage": UnsupportedImage,
    "InvalidVideo": InvalidVideo,
    "VideoTooLarge": VideoTooLarge,
    "UnsupportedVideo": UnsupportedVideo,
}
#: Address-space cap of one decode process: a 36-MP image decodes in well under 1 GiB.
DEFAULT_MEMORY_BYTES = 2 * 2**30
#: How long a new decode process may take to import its modules and say it is ready.
_START_TIMEOUT_S = 60.0
#: Bytes written per drain, so a large upload never sits twice in the pipe transport's buffer.
_WRITE_CHUNK = 1 << 20


@dataclass(eq=False)
class _Worker:
    proc: asyncio.subprocess.Process
    jobs: int = 0


class DecodePool:
    """Runs ``gateway.uploads.check_image`` in child processes with a time limit per job.

    Args:
        policy: the upload limits (the workers are started with them).
        workers: decode processes (jobs beyond wait for one).
        timeout_s: the most one check may take; the process is killed after it.
        queue_timeout_s: the most a job waits for a free process (then 503, retry later).
        memory_bytes: address-space cap of each process (0: none).
        retry_after_s: ``Retry-After`` of the 503.
    """

    def __init__(
        self,
        policy: UploadPolicy,
        *,
        workers: int = 2,
        timeout_s: float = 5.0,
        queue_timeout_s: float = 10.0,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        retry_after_s: int = 2,
    ) -> None:
        self.policy = policy
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.queue_timeout_s = queue_timeout_s
        self.memory_bytes = memory_bytes
        self.retry_after_s = retry_after_s
        self.kills = 0
        self._ready: asyncio.Queue[_Worker] | None = None
        self._live: set[_Worker] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # workers starting
        self._reaping: set[asyncio.Task[None]] = set()  # killed workers being reaped
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every worker and wait until each is ready (~0.4 s of interpreter start-up)."""
        self._queue()
        await asyncio.gather(*list(self._tasks))

    async def close(self) -> None:
        """Close every worker's stdin (it exits) and reap it; kill what does not exit.

        Starting workers are cancelled; workers being killed are left to finish being reaped
        (cancelling that wait once left a killed worker unreaped and ``close`` waiting forever).
        """
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), *list(self._reaping), return_exceptions=True)
        await asyncio.gather(*(self._stop(w, kill=False) for w in list(self._live)), return_exceptions=True)

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._ready is None:  # made on the loop that uses it, filled in the background
            self._ready = asyncio.Queue()
            for _ in range(self.workers):
                self._replace()
        return self._ready

    def _replace(self) -> None:
        task = asyncio.ensure_future(self._add_worker())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add_worker(self) -> None:
        worker = await self._spawn()
        try:
            assert worker.proc.stdout is not None
            await asyncio.wait_for(worker.proc.stdout.readexactly(_HEAD.size), _START_TIMEOUT_S)
        except BaseException:
            await self._stop(worker, kill=True)
            if not self._closed:
                log.error("a decode worker did not start; retrying in 1 s")
                await asyncio.sleep(1)
                self._replace()
            raise
        assert self._ready is not None
        self._ready.put_nowait(worker)

    async def _spawn(self) -> _Worker:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.decode_worker",
            json.dumps(self.policy.to_json()),
            str(self.memory_bytes),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        worker = _Worker(proc)
        self._live.add(worker)
        return worker

    async def _stop(self, worker: _Worker, *, kill: bool) -> None:
        self._live.discard(worker)
        proc = worker.proc
        if proc.returncode is None:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            elif proc.stdin is not None:
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                log.error("decode worker %d did not exit after SIGKILL", proc.pid)

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker whose state is unknown, reap it and start its replacement, all in the background."""
        self.kills += 1
        task = asyncio.ensure_future(self._stop(worker, kill=True))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)
        if not self._closed:
            self._replace()

    # -- jobs --------------------------------------------------------------------------------
    async def check(self, data: bytes, fmt: str) -> None:
        """Run the full checks of a sniffed upload in a worker.

        Raises:
            ImageError: what the checks found (400/413/415), or ``413 decode_timeout`` when
                the check ran past ``timeout_s``.
            UpstreamUnavailable: no worker came free within ``queue_timeout_s`` (503).
        """
        await self._job(data, fmt, fmt)

    async def sample_video(
        self, data: bytes, container: str, sampling: Sampling, limits: VideoLimits, *, timeout_s: float | None = None
    ) -> tuple[VideoInfo, list[Frame]]:
        """Decode a video's sampled frames in a worker (``visionserve.video.sample_video``).

        ``timeout_s`` replaces the pool's for this job: a clip within the limits takes longer
        to decode than any image check.

        Raises:
            ImageError: what sampling found (400/413/415), ``413 decode_timeout`` past ``timeout_s``.
            UpstreamUnavailable: no worker came free within ``queue_timeout_s`` (503).
        """
        params = json.dumps({"container": container, "sampling": asdict(sampling), "limits": asdict(limits)}).encode()
        reply, blob = await self._job(
            _HEAD.pack(len(params)) + params + data, "video", f"{container} video", timeout_s=timeout_s
        )
        frames, offset = [], 0
        for meta in reply["frames"]:  # type: ignore[union-attr]
            size = int(meta["size"])
            frames.append(Frame(float(meta["t_s"]), bool(meta["keyframe"]), blob[offset : offset + size]))
            offset += size
        return VideoInfo(**reply["info"]), frames  # type: ignore[arg-type]

    async def _job(
        self, data: bytes, fmt: str, what: str, *, timeout_s: float | None = None
    ) -> tuple[dict[str, object], bytes]:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        if self._closed:
            raise RuntimeError("the decode pool is closed")
        ready = self._queue()
        try:
            worker = await asyncio.wait_for(ready.get(), self.queue_timeout_s)
        except TimeoutError:
            raise UpstreamUnavailable(
                "every image decoder is busy; retry shortly",
                code="server_busy",
                headers={"Retry-After": str(self.retry_after_s)},
            ) from None
        if worker.proc.returncode is not None:  # died while idle (killed from outside)
            self._discard(worker)
            raise UpstreamUnavailable(
                "an image decoder restarted; retry shortly",
                code="server_busy",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        started = time.perf_counter()
        try:
            reply, blob = await asyncio.wait_for(self._roundtrip(worker, data, fmt), timeout_s)
        except TimeoutError:
            self._discard(worker)
            log.warning("decode check of a %s upload (%d bytes) killed after %.1f s", what, len(data),
                        time.perf_counter() - started)  # fmt: skip
            raise ImageTooLarge(
                f"the {what} did not decode within {timeout_s:g} s; it is too costly to accept",
                code="decode_timeout",
            ) from None
        except (OSError, EOFError, RuntimeError) as exc:  # the process died on this upload
            self._discard(worker)
            log.warning("decode worker died checking a %s upload (%d bytes): %s", what, len(data), exc)
            raise BadImage(f"the {what} crashed its decoder", code="corrupt_image") from None
        except BaseException:  # cancelled: the job's state is unknown
            self._discard(worker)
            raise
        worker.jobs += 1
        ready.put_nowait(worker)
        if "error" in reply:
            cls = _ERRORS.get(str(reply["error"]), BadImage)
            raise cls(str(reply["message"]), code=str(reply["code"]))  # type: ignore[call-arg]
        return reply, blob

    async def _roundtrip(self, worker: _Worker, data: bytes, fmt: str) -> tuple[dict[str, object], bytes]:
        stdin, stdout = worker.proc.stdin, worker.proc.stdout
        assert stdin is not None and stdout is not None
        name = fmt.encode("ascii")
        stdin.write(_HEAD.pack(1 + len(name) + len(data)) + bytes([len(name)]) + name)
        view = memoryview(data)
        for offset in range(0, len(data), _WRITE_CHUNK):
            stdin.write(view[offset : offset + _WRITE_CHUNK])
            await stdin.drain()
        await stdin.drain()
        try:
            (length,) = _HEAD.unpack(await stdout.readexactly(_HEAD.size))
            reply = json.loads(await stdout.readexactly(length))
            blob = b""
            if fmt == "video":  # the frames follow their description
                (length,) = _HEAD.unpack(await stdout.readexactly(_HEAD.size))
                blob = await stdout.readexactly(length)
        except asyncio.IncompleteReadError:
            raise RuntimeError(f"decode worker exited ({worker.proc.returncode})") from None
        return reply, blob
