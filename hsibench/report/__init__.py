"""Reports from a results store: Markdown/HTML tables, statistics, robustness plots, visual panels."""
from .render import make_report
from .tables import failure_table, load_results, markdown_table, overview_table, summary_tables

__all__ = ["make_report", "failure_table", "load_results", "markdown_table", "overview_table", "summary_tables"]
