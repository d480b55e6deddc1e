"""Verification: exact checks of claims, robustness queries and their engines, proofs (engine, file, checker, VIPR)."""
