# The benchmark harness (`make bench` = `python -m bench`); see bench/harness.py for the interface.
