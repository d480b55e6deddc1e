"""The solver-neutral MILP: one standard-form model, and the backends that solve it (HiGHS, or via Pyomo)."""
