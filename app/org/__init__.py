"""The org chart and what hangs on it.

departments (list_departments, get_department, subtree_ids, import_departments) · surveys
(templates, create_survey, open_survey, close_survey, accepting_state) · scenes (QR scene strings
and scan routing: department_scene, parse_scene, route_scan, RouteCache) · posters (poster_code,
department_poster, write_batch) · demo (load_demo: the fictional city of `make run`).
"""
