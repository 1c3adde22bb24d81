"""Where a scenario's rows come from: a declared population or a table of real records."""
