"""`python -m sutro_sql` is the `sutro-sql` command line."""

from sutro_sql.cli import main

main()
