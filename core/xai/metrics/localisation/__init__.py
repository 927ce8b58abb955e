"""Localisation metrics: does the map point at the expert's tumour mask? Map and mask in, no model needed."""
