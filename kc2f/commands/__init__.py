"""Click commands that live beside `kc2f.cli` (each calls one library function)."""
