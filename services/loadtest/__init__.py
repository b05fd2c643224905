"""Load tests against any Kino endpoint: single process, local Ray, or a cluster (`kino loadtest`)."""
