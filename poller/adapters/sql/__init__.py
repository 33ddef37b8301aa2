"""The SQL state database: schema, migrations and the store, on SQLite and PostgreSQL."""
