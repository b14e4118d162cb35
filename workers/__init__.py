"""arq worker wiring. The jobs live with their domains; this only assembles them."""
