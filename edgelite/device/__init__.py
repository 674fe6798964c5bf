"""On-device side of edgelite: numpy + OpenCV + LiteRT (or onnxruntime) and the standard library ONLY.

A test enforces that nothing in this package imports TensorFlow or Keras.
"""
