"""Verification, in three parts a newcomer finds apart:

- ``robustness/``: the engines that answer robustness and VNN-LIB queries (enumeration, SAT, MILP, replay);
- ``proofs/``: the proof engine (branch and bound that records its tree), the proof files (branch-and-bound,
  capacity, composite), lower bounds by decomposition, the proof a training run writes, VIPR export;
- ``checkers/``: the independent exact checkers of claims and proofs, which import no solver.

``reports`` holds the public API's functions over them (verify_claims, check_proof, certify).
"""
