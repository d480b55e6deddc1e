"""Independent checkers in exact arithmetic, sharing no code with the engines: ``claims`` (what a training
run says of its network) and ``proofs`` (branch-and-bound proofs, lemma by lemma). No solver is imported here.
"""
