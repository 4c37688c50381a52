"""The public functions: parse, the builders, derivative and friends, compile."""
