"""Tallies (分类统计) and what is made of them.

rows (the pre-aggregated rows one response adds to) · params (dimensions, periods: parse_period,
parse_group_by) · queries (tallies from the rows or raw answers) · report (tally_report, tally_dict:
the one entry point of the API, the CLI and exports) · verify (recount, verify_tallies) · index
(satisfaction_index, rank_within_categories) · files (render: JSON, CSV, XLSX) · exports (scheduled
exports: run_export, push_run) · results (the console's response counts and charts).
"""
