"""`edgelite bench`: latency percentiles, size and accuracy per model format, on the device.

Imports only numpy, cv2, the TFLite runtime (or onnxruntime) and the standard library, like
`edgelite.device`."""
