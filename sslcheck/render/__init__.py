"""Views of a result: terminal tables, JSON, CSV, Markdown, gate summaries, reports and plots."""
