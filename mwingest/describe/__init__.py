"""What a file says about itself and how it is described: manifests, sheets, metadata, templates,
the page checks."""
