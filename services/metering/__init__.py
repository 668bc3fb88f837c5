"""The metering context: authorize calls, record usage exactly once, charge it, report it."""
