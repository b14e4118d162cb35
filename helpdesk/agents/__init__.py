"""Agents, groups, bearer tokens, roles and the partner scope."""
