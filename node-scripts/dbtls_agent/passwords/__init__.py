"""Passwords that cross nodes: sealed boxes and one user's password read from stdin or a root-only file."""
