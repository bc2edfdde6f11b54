"""The companion app's own tests: Django's test runner (or pytest-django) on SQLite, with no S3
server, no PostgreSQL and no sidecar. The end-to-end suite in tests/e2e covers those."""
