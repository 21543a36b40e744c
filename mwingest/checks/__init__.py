"""Validation before a byte is sent: content sniffing, every format check, SVG safety, URL safety."""
