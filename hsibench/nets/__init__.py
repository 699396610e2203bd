"""Deep unsupervised fusion networks (one training engine, shared learned-degradation layers)."""
