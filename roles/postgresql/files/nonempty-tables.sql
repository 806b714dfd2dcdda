-- The tables of the current database that hold rows, as "name (rows)" joined by ", "; empty when
-- none does. psql variable: ignore, a comma-separated list of bookkeeping tables not counted
-- (the service's schema_migrations, which a freshly migrated database already fills).
SELECT coalesce(string_agg(format('%s (%s)', name, rows), ', ' ORDER BY name), '')
FROM (
  SELECT c.relname AS name,
         (xpath('/row/n/text()',
                query_to_xml(format('SELECT count(*) AS n FROM %I.%I', s.nspname, c.relname),
                             false, true, '')))[1]::text::bigint AS rows
  FROM pg_class c
  JOIN pg_namespace s ON s.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p')
    AND s.nspname NOT IN ('pg_catalog', 'information_schema')
    AND s.nspname NOT LIKE 'pg_toast%'
    AND c.relname <> ALL (string_to_array(:'ignore', ','))
) AS counted
WHERE rows > 0;
