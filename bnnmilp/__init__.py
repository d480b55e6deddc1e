"""bnnmilp: exact training of binarized neural networks by mixed-integer linear programming."""

__version__ = "1.0.0"
