"""Checkable dual certificates: a branch-and-bound engine that records its tree and leaf multipliers,
a versioned proof file, an independent exact checker and VIPR export (value and dual functions:
``bnnmilp.analysis.valuefn``)."""
