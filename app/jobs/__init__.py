"""RQ jobs: module-level functions that take ids, call one service, and commit (one module per area)."""
