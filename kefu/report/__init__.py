"""Numbers for the shop team: conversations, deflection, handoffs and why, answers by source, CSAT, cost, and the
questions the bot could not answer, grouped (docs/report.md).

:mod:`period` is the date range, :mod:`query` reads SQL, :mod:`unanswered` and :mod:`grouping` are pure logic over
what it read, :mod:`service` puts them together for the CLI (``kefu report``) and the admin API.
"""
