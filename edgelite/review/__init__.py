"""`edgelite review`: label the frames a device was unsure of in a local web page, into a training folder.

Workstation side (numpy, OpenCV, the standard library's http.server; TensorFlow only for `--run`).
Importing this package imports nothing heavy.
"""
