-- An index on the path column the daemon looks rows up by (`WHERE confronta = $1`).
-- Django's FileField creates none, so without it every lookup scans the whole table and a large
-- backlog becomes quadratic. Safe to run while the CRM is up (PostgreSQL):
CREATE INDEX CONCURRENTLY IF NOT EXISTS telefonica_ventaportabilidad_confronta_idx
  ON telefonica_ventaportabilidad (confronta);

-- SQLite:
--   CREATE INDEX IF NOT EXISTS telefonica_ventaportabilidad_confronta_idx
--     ON telefonica_ventaportabilidad (confronta);
