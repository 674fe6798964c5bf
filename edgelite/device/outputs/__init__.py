"""Where the camera loop's results go; each output implements `base.Output` (write / flush / close).

=====================  ======================================================  ==================
``text.py``            a console line per result (or every N); ``--json`` lines  always on / --json
``display.py``         an OpenCV window with the overlay                        --display
``uncertain.py``       the frames the model was unsure of, kept on disk         --save-uncertain
``preview.py``         the preview web page, MJPEG stream and /metrics          --http
``mqtt.py``            MQTT state, availability, Home Assistant discovery       --mqtt
=====================  ======================================================  ==================

`open_outputs` makes the first three; the loop opens the preview server and MQTT itself (they need its
run info and stop event).
"""

from __future__ import annotations

import sys

from edgelite.device.options import RunOptions
from edgelite.device.outputs.base import Output
from edgelite.device.outputs.display import DisplayOutput
from edgelite.device.outputs.text import ConsoleOutput, JsonLinesOutput
from edgelite.device.outputs.uncertain import UncertainOutput


def open_outputs(o: RunOptions, on_quit=None) -> list[Output]:
    """The outputs `o` asks for, besides the preview server and MQTT: --json, the console, --display,
    --save-uncertain (an output that is off is not in the list: no per-frame cost)."""
    outputs: list[Output] = []
    if o.json:
        outputs.append(JsonLinesOutput(o.json))
    if o.console_every:
        outputs.append(ConsoleOutput(sys.stderr if o.json == "-" else sys.stdout, every=o.console_every))
    if o.display:
        outputs.append(DisplayOutput(on_quit=on_quit))
    if o.save_uncertain:
        outputs.append(UncertainOutput(o.save_uncertain, below=o.below, max_per_hour=o.max_per_hour,
                                       max_mb=o.max_mb, min_gap=o.uncertain_gap, min_free_mb=o.min_free))
    return outputs
