"""Benchmarks: ADRec side by side with RecBole's models, and ADRec's training speed."""
