"""What every Kino service shares: server bootstrap, errors, metrics, settings, tensors."""
