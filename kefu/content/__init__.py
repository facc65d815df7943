"""Reading bot content (a leaf: imports nothing else of kefu): YAML with line numbers and problem reports.

Every bot file reader (tools, flows, texts, knowledge-base files, conversation tests) reports what is wrong
with file and line through :mod:`kefu.content.problems`.
"""
