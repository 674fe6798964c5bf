"""On-device side of edgelite: numpy + OpenCV + LiteRT (or onnxruntime) and the standard library ONLY.

A test enforces that nothing in this package imports TensorFlow or Keras.

    >>> from edgelite.device import run
    >>> summary = run("bundle/", source="clip.avi", max_frames=100, print_every=0)   # doctest: +SKIP

Importing this package imports nothing; `run` loads the loop on first call.
"""


def run(model, source="0", **options):
    """Run the camera loop; see `edgelite.device.loop.run` (returns a RunSummary)."""
    from edgelite.device.loop import run as _run

    return _run(model, source, **options)
