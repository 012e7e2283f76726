"""`python -m client` runs rnnctl."""

from .cli import main

main()
