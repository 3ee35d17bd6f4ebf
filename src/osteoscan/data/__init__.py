"""Data layer: records, decoding, pixel cache, transforms, splits, synthetic phantoms."""
