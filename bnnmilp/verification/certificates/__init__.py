"""Checkable dual certificates: a branch-and-bound engine that records its tree and leaf multipliers,
a versioned proof file, an independent exact checker, VIPR export, and value/dual functions."""
