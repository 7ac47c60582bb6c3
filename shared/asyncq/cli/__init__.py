"""What the three CLIs share: running a coroutine, options, logging, signals; and the asyncq command."""
