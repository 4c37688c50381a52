"""The front end: text -> syntax tree -> typed expression graph."""
