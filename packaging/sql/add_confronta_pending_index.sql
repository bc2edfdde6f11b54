-- A partial index of the rows still pointing at a local file: the reconcile pass asks for them
-- every `watch.reconcile_interval_s` (`WHERE confronta IS NOT NULL AND confronta <> '' ...
-- ORDER BY id LIMIT n`). Without it each pass reads the whole sales table (190-342 ms and
-- gigabytes a minute on millions of rows); with it a pass reads only the pending rows, which
-- are few, however large the table grows. Safe to run while the CRM is up (PostgreSQL):
CREATE INDEX CONCURRENTLY IF NOT EXISTS telefonica_ventaportabilidad_confronta_pending_idx
  ON telefonica_ventaportabilidad (id) WHERE confronta IS NOT NULL AND confronta <> '';

-- SQLite:
--   CREATE INDEX IF NOT EXISTS telefonica_ventaportabilidad_confronta_pending_idx
--     ON telefonica_ventaportabilidad (id) WHERE confronta IS NOT NULL AND confronta <> '';
