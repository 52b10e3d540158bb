"""Publishing: the artifacts people read (JSON, charts, dashboard) and the stores they go to."""
