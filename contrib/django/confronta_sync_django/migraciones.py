"""The indexes the sidecar's queries need, as the mixin declares them and as a migration builds
them.

`ConfrontaMinioMixin.Meta.indexes` declares three (named as `packaging/sql/` names them, for
the default table):

- `<app>_<model>_confronta_idx` on `confronta`: the sidecar looks each file's row up by its
  path (`WHERE confronta = $1`) for every file it sees;
- `<app>_<model>_confronta_pending_idx` on `id`, of the rows still naming a local file
  (`WHERE confronta IS NOT NULL AND confronta <> ''`): the reconcile pass asks for them every
  `reconcile_interval_s`, in id order;
- `<app>_<model>_confronta_object_idx` on `confronta_minio_object_name`: the sidecar asks
  whether a row still references an object before it deletes one (a replaced object, an
  orphan).

`makemigrations` writes them as `migrations.AddIndex`, which builds each index inside the
migration's transaction and blocks writes to the sales table meanwhile. Replace it with
`AgregarIndiceConfronta`, in a migration with `atomic = False`: on PostgreSQL it builds the
index `CONCURRENTLY` (the CRM keeps writing); on SQLite it is a plain `CREATE INDEX`. On both it
leaves alone an index of that name that is already there and valid (made by the SQL in
`packaging/sql/`), and rebuilds one a failed concurrent build left invalid.
"""

from django.db import NotSupportedError, models
from django.db.migrations.operations import AddIndex
from django.db.models import Q

#: PostgreSQL's limit for identifiers (Django's 30 is Oracle's, which the sidecar does not
#: support). The default names are the ones `packaging/sql/` uses, up to 51 characters.
LONGITUD_MAXIMA_NOMBRE = 63


class IndiceConfronta(models.Index):
    """A models.Index that allows PostgreSQL-length names, so the migration's indexes can carry
    the names the sidecar's packaged SQL gives them."""

    max_name_length = LONGITUD_MAXIMA_NOMBRE


class Distinto(models.Lookup):
    """`lhs <> rhs`, as an expression for an index condition. `~Q(confronta="")` renders as
    `NOT (confronta = '' AND confronta IS NOT NULL)` on a nullable column, which PostgreSQL
    proves implied by the sidecar's `confronta <> ''` but SQLite does not (it matches the
    index's terms against the query's one by one), so SQLite would never use the index."""

    lookup_name = "distinto"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} <> {rhs}", [*lhs_params, *rhs_params]


#: The rows still naming a local file, as the reconcile pass asks for them (and as
#: packaging/sql/add_confronta_pending_index.sql writes it):
#: `confronta IS NOT NULL AND confronta <> ''`.
PENDIENTES = Q(confronta__isnull=False) & Q(Distinto(models.F("confronta"), ""))


def indices_confronta():
    """The three indexes, for `Meta.indexes` (names with `%(app_label)s_%(class)s`)."""
    return [
        IndiceConfronta(fields=["confronta"], name="%(app_label)s_%(class)s_confronta_idx"),
        IndiceConfronta(
            fields=["id"], condition=PENDIENTES,
            name="%(app_label)s_%(class)s_confronta_pending_idx",
        ),
        IndiceConfronta(
            fields=["confronta_minio_object_name"],
            name="%(app_label)s_%(class)s_confronta_object_idx",
        ),
    ]


class AgregarIndiceConfronta(AddIndex):
    """`AddIndex` that builds the index CONCURRENTLY on PostgreSQL (the migration must be
    `atomic = False`, as for Django's own `AddIndexConcurrently`) and plainly elsewhere, and
    that takes an index of the same name already there, valid, as done."""

    def describe(self):
        return super().describe() + " (concurrently on PostgreSQL)"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        conexion = schema_editor.connection
        postgres = conexion.vendor == "postgresql"
        if postgres and conexion.in_atomic_block:
            raise NotSupportedError(
                f"{type(self).__name__} builds {self.index.name} CONCURRENTLY, which PostgreSQL "
                f"cannot do inside a transaction: set atomic = False on the migration"
            )
        estado = _estado_del_indice(conexion, model._meta.db_table, self.index.name)
        if estado == "valido":
            return
        if estado == "invalido":
            # A concurrent build that failed leaves an invalid index behind, which the planner
            # ignores but every write still maintains.
            schema_editor.execute(
                f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index.name)}"
            )
        if postgres:
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


def _estado_del_indice(conexion, tabla, nombre):
    """'valido', 'invalido' (PostgreSQL: a failed concurrent build) or None (absent)."""
    with conexion.cursor() as cursor:
        if conexion.vendor == "postgresql":
            cursor.execute(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_class t ON t.oid = i.indrelid "
                "WHERE c.relname = %s AND t.relname = %s AND pg_table_is_visible(c.oid)",
                [nombre, tabla],
            )
            fila = cursor.fetchone()
            if fila is None:
                return None
            return "valido" if fila[0] else "invalido"
        restricciones = conexion.introspection.get_constraints(cursor, tabla)
    return "valido" if nombre in restricciones else None
