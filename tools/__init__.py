"""Developer tooling: code generation, the local stack, dev tokens, ledger verification."""
