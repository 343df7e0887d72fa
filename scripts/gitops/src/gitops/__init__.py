"""Render, validate, diff and promote the Kustomize overlays of this repository."""
