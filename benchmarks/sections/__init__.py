"""One module per comparison; each has `run(bench, report)` that adds its part of the report."""
