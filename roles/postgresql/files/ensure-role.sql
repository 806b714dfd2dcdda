-- Create or update the service's login role and database. psql variables: user, db; the password
-- comes from the environment so it never appears on a command line.
\getenv password WSNOTIFY_PG_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'user')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SET password_encryption = 'scram-sha-256';
ALTER ROLE :"user" WITH LOGIN PASSWORD :'password';
-- UTF-8 regardless of the host's locale (a minimal host has none and would get SQL_ASCII).
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L LC_COLLATE %L LC_CTYPE %L TEMPLATE template0',
              :'db', :'user', 'UTF8', 'C.UTF-8', 'C.UTF-8')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"user";
