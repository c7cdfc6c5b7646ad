"""Lifecycle replay: a labelled file replayed through the whole loop per retraining policy."""
