"""Canned replies: texts per language (and lifecycle stage) that agents start a reply from."""
