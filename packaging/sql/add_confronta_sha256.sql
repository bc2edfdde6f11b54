-- Adds the checksum column confronta-sync records beside the seed's three MinIO columns.
-- Safe to run twice. PostgreSQL:
ALTER TABLE telefonica_ventaportabilidad
  ADD COLUMN IF NOT EXISTS confronta_sha256 varchar(64) NULL;

-- SQLite has no ADD COLUMN IF NOT EXISTS; run this instead, once:
--   ALTER TABLE telefonica_ventaportabilidad ADD COLUMN confronta_sha256 varchar(64) NULL;
--
-- In a Django project the same change is a migration on VentaPortabilidad:
--   confronta_sha256 = models.CharField(max_length=64, null=True, blank=True)
