"""Declarative models of every table that crosses a boundary, and the unit rules they rely on."""
