-- One database per service (each service owns its data). Runs once, when the PostgreSQL
-- volume is first initialised (/docker-entrypoint-initdb.d), as POSTGRES_USER, who owns them.
CREATE DATABASE balcao_auth;
CREATE DATABASE balcao_users;
CREATE DATABASE balcao_invitations;
CREATE DATABASE balcao_notifier;
CREATE DATABASE balcao_documents;
