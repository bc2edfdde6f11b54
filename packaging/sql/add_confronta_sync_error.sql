-- Adds the column in which confronta-sync says why it refused a venta's file (wrong type, too
-- large, a virus). The daemon writes it together with confronta = '' in one compare-and-set, so
-- the refused path can never be matched to this venta again, and the Django companion shows it
-- ("Confronta rechazada: <motivo>"). A later file that moves clears it. Required from 0.2.
-- Safe to run twice. PostgreSQL:
ALTER TABLE telefonica_ventaportabilidad
  ADD COLUMN IF NOT EXISTS confronta_sync_error text NULL;

-- SQLite has no ADD COLUMN IF NOT EXISTS; run this instead, once:
--   ALTER TABLE telefonica_ventaportabilidad ADD COLUMN confronta_sync_error text NULL;
--
-- In a Django project the same change is a migration on VentaPortabilidad (the companion's
-- ConfrontaMinioMixin declares the field):
--   confronta_sync_error = models.TextField(null=True, blank=True)
