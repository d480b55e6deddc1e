"""Robustness engines: per sample or per VNN-LIB query, a counterexample replayed exactly or a proof.

``robust`` runs the engines in order of cost: ``reach`` (enumeration of the first layer's reachable bits),
``split`` (one enumeration over several processes), ``sat`` (cardinality encodings), and the MILP;
``replay`` accepts a candidate only once it is decided exactly; ``vnnlib`` answers VNN-LIB queries.
"""
