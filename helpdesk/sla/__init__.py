"""SLA targets. Pure arithmetic here; the database work lives with the tickets."""
