"""The proof engine and its files: a branch-and-bound engine that records its tree and leaf multipliers
(``bnb``, with ``propagate`` and ``symmetry``), the versioned proof file (``proof``), capacity and composite
proofs, lower bounds by decomposition, the proof a training run writes (``run_proofs``) and VIPR export. The
checker is ``verification.checkers.proofs``; value and dual functions are ``bnnmilp.analysis.valuefn``."""
