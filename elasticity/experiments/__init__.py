"""One module per experiment: a pure function from a config to a tidy table, cached by `results`."""
