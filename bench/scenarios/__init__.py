"""One module per scenario of issue 8."""
