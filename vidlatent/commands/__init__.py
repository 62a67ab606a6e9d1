"""One module per subcommand; each defines a click ``command``. Keep torch imports inside functions."""
