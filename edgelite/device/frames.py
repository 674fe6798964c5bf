"""`Frame`: one captured image as it travels the camera loop, from a source's capture thread through the
model (`Pipeline.run_model`) to the outputs.

    >>> import numpy as np
    >>> f = Frame(image=np.zeros((2, 2, 3), np.uint8), index=0, timestamp=0.0)
    >>> f.model_input is None, f.dropped
    (True, 0)
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Frame:
    """One captured image and what the capture thread prepared from it."""

    image: np.ndarray  # BGR uint8: what the preview and the display show
    index: int  # position in the source since it was opened (drops leave gaps)
    timestamp: float  # wall-clock time of capture (time.time())
    model_image: np.ndarray | None = None  # BGR already sized for the model (picamera2's lores stream)
    file: str | None = None  # the image file, for folder sources
    model_input: np.ndarray | None = None  # RGB model input, made by `Source.prepare` in the capture thread
    prep_ms: float = 0.0  # time `prepare` took
    capture_ms: float = 0.0  # time the loop waited for this frame
    dropped: int = 0  # frames the source had dropped when this one was read
    sensor_scores: np.ndarray | None = None  # scores a camera's own accelerator computed (the AI Camera's IMX500)
    sensor_ms: float = 0.0  # the time that accelerator took (its metadata's KPI)
