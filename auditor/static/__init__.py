"""The libcst static analyzer: rules over one Python source at a time."""
