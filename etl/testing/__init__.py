"""Synthetic corpora for the demo and the tests: one tone per segment, so the right audio in the right
row can be proven by its pitch."""
