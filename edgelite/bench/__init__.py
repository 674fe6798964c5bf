"""`edgelite bench`: latency percentiles, size and accuracy per model format, on the device.

Imports only numpy, cv2, the TFLite runtime (or onnxruntime) and the standard library, like
`edgelite.device` (a test enforces it). Importing this package imports nothing.

    cli       the `edgelite bench` command (wiring only)
    options   BenchOptions (every flag, declared once), the --formats / --threads parsers
    run       bench(): one job per (model, threads), the progress bar
    targets   what to bench: bundles and bare .tflite/.onnx files
    data      the images top-1 is scored on: --data or the bundle's held-out split
    worker    one row, in its own `python -m edgelite.bench.worker` process (JSON in, JSON lines out)
    pipeline  --pipeline: the camera loop's stages, timed
    stats     row statuses, latency summaries, the top-1 check (imports nothing else from bench)
    report    the result's keys; table, JSON and CSV; reading a result back
    env       where it ran: board, CPU, governor, runtimes
    plot      the PNG figure
    remote    --host: the same bench on a device over SSH
    errors    BenchUsageError (an edgelite.errors.UsageError)
"""
