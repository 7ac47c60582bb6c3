"""The public core: the queue, its envelope, key layout, scripts, errors and connections."""
