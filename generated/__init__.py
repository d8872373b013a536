"""Generated from contracts/ by `make generate`; never edit by hand."""
