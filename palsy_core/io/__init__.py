"""Reading media, manifests, uploaded bundles and the bundled sample files."""
