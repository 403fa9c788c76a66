"""MkDocs plugin `invertornot`: dark-mode classes for every image of the site, decided at build time.

Importing this package is cheap; the core (numpy, the store, the model) loads when a build needs it.
"""
