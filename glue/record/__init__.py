"""Recording results: provenance, the append-only run store, tables and plots. Imports no torch."""
