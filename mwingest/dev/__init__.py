"""Development tooling, not product: the throwaway MediaWiki the tests and the demo start."""
