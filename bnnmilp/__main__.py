from bnnmilp.cli import main

main()
