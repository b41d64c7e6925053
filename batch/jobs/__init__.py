"""Jobs: each of the product's jobs end to end, built from the stages below."""
