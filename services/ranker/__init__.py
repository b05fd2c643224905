"""FeedRanker: retrieval over content embeddings, a small torch ranking model, re-ranking, online features."""
