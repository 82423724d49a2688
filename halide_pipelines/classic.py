"""Placeholder: filled in by the workload author."""
