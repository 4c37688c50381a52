"""The intermediate representation: hash-consed tensor nodes and the function registry."""
