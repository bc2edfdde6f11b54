-- The three MinIO columns of the seed plan's migration, for a table that predates it.
-- PostgreSQL; matches what Django's URLField/CharField/BooleanField create.
ALTER TABLE telefonica_ventaportabilidad
  ADD COLUMN IF NOT EXISTS confronta_minio_url varchar(200) NULL,
  ADD COLUMN IF NOT EXISTS confronta_minio_object_name varchar(500) NULL,
  ADD COLUMN IF NOT EXISTS confronta_subido_a_minio boolean NOT NULL DEFAULT false;
