"""The domain: call states, records and time arithmetic. No I/O lives here."""
