"""Operating it: the overview, event stories, the status page and its health checks."""
