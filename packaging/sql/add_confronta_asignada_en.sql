-- Adds the column that says when a venta was last given a new file. The Django companion's
-- save() sets it in the same write as `confronta` whenever it assigns a new file (and never
-- otherwise); `confronta-sync adopt` sets it too. confronta-sync reads it as the evidence that a
-- row it once saw naming a path while no file stood there owns a file that appears there later:
-- without it a back-office edit of an old row could not be told from a new upload, and a name
-- Django hands to the next sale could reach the old one. Required from 0.2; existing rows stay
-- NULL. Safe to run twice. PostgreSQL:
ALTER TABLE telefonica_ventaportabilidad
  ADD COLUMN IF NOT EXISTS confronta_asignada_en timestamp with time zone NULL;

-- SQLite has no ADD COLUMN IF NOT EXISTS; run this instead, once:
--   ALTER TABLE telefonica_ventaportabilidad ADD COLUMN confronta_asignada_en datetime NULL;
--
-- In a Django project the companion's migration adds it (ConfrontaMinioMixin declares
--   confronta_asignada_en = models.DateTimeField(null=True, blank=True, editable=False)).
--
-- A writer that bypasses the companion (a script, a fix by hand) gives a row a file the same
-- way, once the file is in place:
--   UPDATE telefonica_ventaportabilidad
--      SET confronta = 'confrontas/x.pdf', confronta_asignada_en = CURRENT_TIMESTAMP
--    WHERE id = 1234;
