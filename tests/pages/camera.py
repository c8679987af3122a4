"""A camera for the browser tests: Chromium's fake capture reads a YUV4MPEG2 file, so a
QR code "held up to the camera" is a few frames of it written here (tests of the web
wallet scanning a kiosk's code)."""

from __future__ import annotations

from pathlib import Path

import segno

from tests.pages.conftest import CHROMIUM_ARGS

__all__ = ["camera_args", "qr_video"]


def camera_args(video: Path) -> list[str]:
    """Chromium's flags for a camera that plays ``video`` and a permission prompt that
    always allows."""
    return [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"]  # fmt: skip


def qr_video(text: str, path: Path, *, width: int = 640, height: int = 480) -> Path:
    """A few frames of the QR code of ``text``, as Chromium's fake camera reads them:
    YUV4MPEG2, 4:2:0, the code black on white in the luma plane, chroma neutral."""
    rows = [list(row) for row in segno.make(text, error="m").matrix_iter(scale=1, border=4)]
    scale = min(width, height) // len(rows)
    left, top = (width - scale * len(rows)) // 2, (height - scale * len(rows)) // 2
    luma = bytearray([235]) * (width * height)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                for line in range(top + y * scale, top + (y + 1) * scale):
                    start = line * width + left + x * scale
                    luma[start : start + scale] = bytes([16]) * scale
    chroma = bytes([128]) * (width // 2 * height // 2)
    frame = b"FRAME\n" + bytes(luma) + chroma + chroma
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * 5)
    return path
