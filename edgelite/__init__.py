"""edgelite: from a folder of labelled photos to a live camera classifier on the edge.

Importing ``edgelite`` imports nothing heavy; each subpackage loads its own dependencies.
"""

__version__ = "0.1.0"
