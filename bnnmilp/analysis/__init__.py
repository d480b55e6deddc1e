"""Analysis through the MILP: value and dual functions, gradients (MilpLayer), sensitivity, plots."""
