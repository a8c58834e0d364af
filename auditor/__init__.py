"""pgolf-audit: decides whether a Parameter Golf submission plays by the rules, by evidence."""

__version__ = "0.1.0"
