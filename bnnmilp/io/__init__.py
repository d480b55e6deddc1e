"""Files: run folders (weights, certificates), YAML/JSON with atomic writes, networks from and to other tools."""
