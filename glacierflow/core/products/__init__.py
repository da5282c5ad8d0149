"""The product formats: one owner each for the velocity and the NDSI products (bands, metadata keys)."""
