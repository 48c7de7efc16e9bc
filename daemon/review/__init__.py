"""Conflict review: the conflicts view, the report, the CLI commands and the review page.

``view`` (what the conflicts and records say, no I/O) → ``report`` (HTML, Markdown, JSON) and
``resolve`` (a person's choice, checked, as a Resolution) → ``source`` (reads the topics,
publishes resolutions) → ``cli`` and ``page`` (the surfaces). See docs/REVIEW.md.
"""
