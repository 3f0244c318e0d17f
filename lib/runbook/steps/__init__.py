"""One module per step of the runbook, each a handful of named phases a notebook cell calls."""
