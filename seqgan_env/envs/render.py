"""The ``rgb_array`` picture of an episode: the text written so far, as a fixed-size image.

Contract
--------
* ``text_frame(text, columns)`` returns a ``(FRAME_HEIGHT, frame_width(columns), 3)``
  uint8 array: the text in black on white, on one line, in Pillow's built-in
  bitmap font (monospace, ``CHAR_WIDTH`` x 11 pixels per character).
* The shape depends only on ``columns``, never on the text, so every frame of an
  env has one shape (what video writers and frame stacks need); both sides are even.
* A character the font cannot draw (outside Latin-1, or a control character) is
  drawn as ``?``. A text longer than ``columns`` raises ``ValueError``: an env
  sizes ``columns`` with ``text_columns`` so that its texts always fit.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from seqgan_env.envs.spec import EOS_ID
from seqgan_env.utils.validation import check_int

CHAR_WIDTH = 6  # pixels per character of Pillow's bitmap font
MARGIN = 4  # pixels of white left, right and above the text
FRAME_HEIGHT = 20  # 4 above + 11 of glyphs + 5 below


@functools.cache
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default_imagefont()


def frame_width(columns: int) -> int:
    """Width in pixels of a frame that holds ``columns`` characters."""
    check_int("columns", columns, 1, "the characters per frame")
    return 2 * MARGIN + CHAR_WIDTH * columns


def text_columns(decode: Callable[[np.ndarray], str], vocab_size: int, max_length: int) -> int:
    """The longest text ``decode`` makes of ``max_length`` symbols: the ``columns`` an env renders with.

    Decodes every symbol id once to find the widest, then a row of ``max_length``
    of it (which counts any separators ``decode`` puts between tokens).
    """
    first = EOS_ID + 1
    if vocab_size <= first:
        return 1
    widths = [len(decode(np.array([i], dtype=np.int64))) for i in range(first, vocab_size)]
    widest = first + int(np.argmax(widths))
    return max(1, len(decode(np.full(max_length, widest, dtype=np.int64))))


def _drawable(text: str) -> str:
    return "".join(c if c.isprintable() and ord(c) < 256 else "?" for c in text)


def text_frame(text: str, columns: int) -> np.ndarray:
    """(FRAME_HEIGHT, frame_width(columns), 3) uint8 image of ``text`` (at most ``columns`` characters)."""
    width = frame_width(columns)
    if len(text) > columns:
        raise ValueError(
            f"text of {len(text)} characters does not fit a frame of columns={columns}: "
            f"size columns with text_columns(decode, vocab_size, max_length). Text: {text!r}"
        )
    image = Image.new("RGB", (width, FRAME_HEIGHT), "white")
    ImageDraw.Draw(image).text((MARGIN, MARGIN), _drawable(text), font=_font(), fill="black")
    return np.array(image, dtype=np.uint8)  # (H, W, 3)
