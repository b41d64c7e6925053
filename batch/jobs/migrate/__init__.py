"""Migrating licenses into a new CSP: a mapping, waves that fit the seats, groups, a way back."""
