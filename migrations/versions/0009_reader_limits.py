"""Limits on marconi_reader that hold whatever the reader does.

PostgreSQL lets any role store session defaults for itself (``ALTER ROLE marconi_reader [IN DATABASE d] SET
statement_timeout = 0``) and change its own password, so stored limits alone do not hold. This revision:

- defines the reader's stored settings once, in ``marconi_reader_settings()``, and
  ``marconi_reader_restore_settings()``, which removes every other setting stored for the role (in any database)
  and puts back missing ones; the reader guard (marconi.db.reader_guard) calls it on every pass;
- on PostgreSQL 17+, when migrated by a superuser, adds a login event trigger: in a reader session it restores
  the stored settings, gives every parameter the reader had stored the value it would have without them, and
  applies the limits (``default_transaction_read_only`` too, which is therefore no longer stored: a stored one
  would make the trigger's own transaction read-only, unable to restore anything), so what a reader stores never
  reaches a session (otherwise the reader guard removes it within a second);
- caps what one reader can take: ``temp_file_limit`` (superuser-only, so the reader cannot raise it) and a
  connection limit (a role cannot change its own);
- takes TEMPORARY on this database from PUBLIC (the owner keeps it: the importers use temp tables).

Statements that outlive ``statement_timeout`` after a reader's ``SET statement_timeout = 0`` are cancelled by the
reader guard, which runs outside the database. On a server where the migrating role is not a superuser,
``temp_file_limit`` is stored only if it was granted ``SET ON PARAMETER temp_file_limit``; a warning says so.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATEMENT_TIMEOUT = "30s"  # as in 0004
IDLE_IN_TRANSACTION_TIMEOUT = "60s"  # as in 0004
TEMP_FILE_LIMIT = "256MB"
CONNECTION_LIMIT = 16
LOGIN_TRIGGER_SINCE = 170000  # server_version_num of PostgreSQL 17, the first with login event triggers


def _stored_settings(login_trigger: bool) -> list[str]:
    settings = [f"statement_timeout={STATEMENT_TIMEOUT}",
                f"idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT}",
                f"temp_file_limit={TEMP_FILE_LIMIT}"]
    # without a login trigger the stored default is the only one; with it, the trigger applies it per session
    return settings if login_trigger else ["default_transaction_read_only=on", *settings]


STRAYS = """
CREATE FUNCTION marconi_reader_stray_settings() RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT coalesce(array_agg(e || CASE WHEN s.setdatabase <> 0 THEN ' (in database ' || d.datname || ')' ELSE '' END
                            ORDER BY s.setdatabase, e), '{}')
  FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) e
  WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = 'marconi_reader')
    AND (s.setdatabase <> 0 OR NOT e = ANY (public.marconi_reader_settings()))
$fn$
"""

RESTORE = """
CREATE FUNCTION marconi_reader_restore_settings() RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  wanted text[] := public.marconi_reader_settings();
  removed text[] := public.marconi_reader_stray_settings();
  reader oid := (SELECT oid FROM pg_roles WHERE rolname = 'marconi_reader');
  stored record;
  entry text;
BEGIN
  FOR stored IN SELECT s.setdatabase, d.datname, s.setconfig
                FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
                WHERE s.setrole = reader LOOP
    IF stored.setdatabase <> 0 THEN
      EXECUTE format('ALTER ROLE marconi_reader IN DATABASE %I RESET ALL', stored.datname);
    ELSIF NOT (stored.setconfig <@ wanted AND wanted <@ stored.setconfig) THEN
      EXECUTE 'ALTER ROLE marconi_reader RESET ALL';
    END IF;
  END LOOP;
  FOREACH entry IN ARRAY wanted LOOP
    CONTINUE WHEN EXISTS (SELECT 1 FROM pg_db_role_setting
                          WHERE setrole = reader AND setdatabase = 0 AND entry = ANY (setconfig));
    BEGIN
      EXECUTE format('ALTER ROLE marconi_reader SET %s = %L', split_part(entry, '=', 1), split_part(entry, '=', 2));
    EXCEPTION WHEN insufficient_privilege THEN
      NULL;  -- temp_file_limit on a server where the owner may not set it: the migration warned
    END;
  END LOOP;
  RETURN removed;
END
$fn$
"""

LOGIN = """
CREATE FUNCTION marconi_reader_login() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  strays text[];
  entry text;
  parameter text;
  unstored text;
BEGIN
  IF session_user <> 'marconi_reader' THEN
    RETURN;
  END IF;
  strays := public.marconi_reader_stray_settings();
  -- a login made read-only (by its options, or by a stored default) cannot write: this session is fixed in place
  -- below all the same, and the next read-write login or the reader guard removes what is stored
  IF NOT current_setting('transaction_read_only')::boolean THEN
    PERFORM public.marconi_reader_restore_settings();
  END IF;
  -- what the reader stored was applied before this trigger: give each such parameter its value without it
  FOREACH entry IN ARRAY strays LOOP
    parameter := split_part(entry, '=', 1);
    BEGIN
      SELECT coalesce(
        (SELECT substr(e, strpos(e, '=') + 1) FROM pg_db_role_setting s, unnest(s.setconfig) e
         WHERE s.setrole = 0 AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
           AND lower(split_part(e, '=', 1)) = lower(parameter)
         ORDER BY s.setdatabase DESC LIMIT 1),
        (SELECT f.setting FROM pg_file_settings f WHERE lower(f.name) = lower(parameter) AND f.applied
         ORDER BY f.seqno DESC LIMIT 1),
        (SELECT g.boot_val FROM pg_settings g WHERE g.name = lower(parameter)),
        '') INTO unstored;
      PERFORM set_config(parameter, unstored, false);
    EXCEPTION WHEN others THEN
      RAISE WARNING 'marconi_reader: % keeps its stored value in this session (%)', parameter, SQLERRM;
    END;
  END LOOP;
  FOREACH entry IN ARRAY public.marconi_reader_settings() || 'default_transaction_read_only=on'::text LOOP
    PERFORM set_config(split_part(entry, '=', 1), substr(entry, strpos(entry, '=') + 1), false);
  END LOOP;
  IF cardinality(strays) > 0 THEN
    RAISE WARNING 'marconi_reader had stored settings of its own (%); they do not apply', array_to_string(strays, ', ');
  END IF;
END
$fn$
"""


def upgrade() -> None:
    conn = op.get_bind()
    version = int(conn.execute(sa.text("SHOW server_version_num")).scalar())
    superuser = conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
    login_trigger = version >= LOGIN_TRIGGER_SINCE and superuser  # only a superuser may create event triggers
    if version >= LOGIN_TRIGGER_SINCE and not superuser:
        op.execute("DO $$ BEGIN RAISE WARNING 'no login trigger for marconi_reader: only a superuser may create it' "
                   "USING HINT = 'Settings the reader stores reach its next session until the reader guard removes "
                   "them (within a second while marconi serve runs); run this migration as a superuser to close that "
                   "gap'; END $$")
    settings = ", ".join("'" + s + "'" for s in _stored_settings(login_trigger))
    op.execute(f"CREATE FUNCTION marconi_reader_settings() RETURNS text[] LANGUAGE sql IMMUTABLE "
               f"AS $$ SELECT ARRAY[{settings}]::text[] $$")
    op.execute("COMMENT ON FUNCTION marconi_reader_settings() IS 'The settings stored for marconi_reader (migration "
               "0009); marconi_reader_restore_settings() removes any other.'")
    op.execute(STRAYS)
    op.execute(RESTORE)
    op.execute("REVOKE EXECUTE ON FUNCTION marconi_reader_restore_settings() FROM PUBLIC")
    if login_trigger:
        op.execute(LOGIN)
        op.execute("REVOKE EXECUTE ON FUNCTION marconi_reader_login() FROM PUBLIC")
        op.execute("CREATE EVENT TRIGGER marconi_reader_login ON login EXECUTE FUNCTION marconi_reader_login()")
    op.execute(
        f"""
        DO $$ BEGIN
          ALTER ROLE marconi_reader SET temp_file_limit = '{TEMP_FILE_LIMIT}';
        EXCEPTION WHEN insufficient_privilege THEN
          RAISE WARNING 'marconi_reader has no temp_file_limit: % may not set it', current_user
            USING HINT = 'As a superuser: GRANT SET ON PARAMETER temp_file_limit TO ' || current_user
                         || ', then SELECT marconi_reader_restore_settings()';
        END $$
        """
    )
    op.execute("SELECT marconi_reader_restore_settings()")
    op.execute(f"ALTER ROLE marconi_reader CONNECTION LIMIT {CONNECTION_LIMIT}")
    op.execute("DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC, marconi_reader', "
               "current_database()); EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO CURRENT_USER', "
               "current_database()); END $$")


def downgrade() -> None:
    op.execute("DROP EVENT TRIGGER IF EXISTS marconi_reader_login")
    op.execute("DROP FUNCTION IF EXISTS marconi_reader_login()")
    op.execute("DROP FUNCTION marconi_reader_restore_settings()")
    op.execute("DROP FUNCTION marconi_reader_stray_settings()")
    op.execute("DROP FUNCTION marconi_reader_settings()")
    op.execute("DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database()); END $$")
    op.execute("ALTER ROLE marconi_reader CONNECTION LIMIT -1")
    op.execute("DO $$ BEGIN ALTER ROLE marconi_reader RESET temp_file_limit; "
               "EXCEPTION WHEN insufficient_privilege THEN NULL; END $$")
    op.execute("ALTER ROLE marconi_reader SET default_transaction_read_only = on")  # 0004's stored limits
    op.execute(f"ALTER ROLE marconi_reader SET statement_timeout = '{STATEMENT_TIMEOUT}'")
    op.execute(f"ALTER ROLE marconi_reader SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'")
