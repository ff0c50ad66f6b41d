"""Benchmarks of OFA+ against transformers BART (run: python -m benchmarks.run); see benchmarks/README.md."""
