"""Customer satisfaction: a survey after each solved ticket, ratings, and their metrics."""
