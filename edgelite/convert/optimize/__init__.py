"""The Keras-side optimisations `convert` applies before export (tfmot, tf-keras): each takes the trained
float model and returns a plain Keras model the exporters write like any other.

=====================  ===============================================================================
``pruning.py``         magnitude pruning (`--prune`), unstructured or in blocks; wrappers stripped
``qat.py``             quantization-aware training (`--qat`) and pruning-preserving QAT (PQAT)
``fold_batchnorm.py``  BatchNorm folded into the convolution before it, so per-tensor QAT trains the
                       kernel the .tflite stores
``calibration.py``     QAT's activation ranges from the float model on calibration images
``tuning.py``          what pruning and QAT share: the training data, compile step, progress lines
=====================  ===============================================================================

Importing this package imports nothing; TensorFlow loads when a function here runs.
"""
