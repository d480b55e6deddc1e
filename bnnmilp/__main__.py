from bnnmilp.cli import run

run()
