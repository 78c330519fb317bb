"""Replay and simulation: capture what happened to process instances, replay it against new
code or a new process definition, and keep it as a regression test."""
