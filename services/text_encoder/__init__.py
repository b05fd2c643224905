"""TextEncoder: prompts to token embeddings and pooled vectors, batched and cached."""
