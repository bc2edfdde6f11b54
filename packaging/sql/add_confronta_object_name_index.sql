-- An index on the object-name column. Before it deletes an object (the previous object of a
-- corrected venta) the daemon asks whether any row still references it
-- (`WHERE confronta_minio_object_name = $1`), on the connection its row lookups share, and
-- `orphans --delete-objects` asks the same for each page of candidates. Django creates no index
-- there, so without this one each question reads the whole sales table while the lookups of
-- every file in flight wait behind it. Safe to run while the CRM is up (PostgreSQL):
CREATE INDEX CONCURRENTLY IF NOT EXISTS telefonica_ventaportabilidad_confronta_object_idx
  ON telefonica_ventaportabilidad (confronta_minio_object_name);

-- SQLite:
--   CREATE INDEX IF NOT EXISTS telefonica_ventaportabilidad_confronta_object_idx
--     ON telefonica_ventaportabilidad (confronta_minio_object_name);
