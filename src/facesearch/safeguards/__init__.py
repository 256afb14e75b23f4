"""The rules every layer above obeys: what each audit event records and how the entries are chained, what a
collection must declare before it may hold a face (purpose, lawful basis, biometric condition, retention) and
what every search must state, how templates and uploads are encrypted, and which role may do what.

Below the store, so that the catalog can write an action and its audit event in one transaction."""
