-- The piwheels database, version 0.1.0: run by piw-initdb in one transaction.
--
-- {username} stands for the (quoted) ordinary role piw-master connects as.
-- That role owns nothing and can change nothing directly: it reads the
-- tables it needs and writes through the SECURITY DEFINER functions at the
-- end of this script, which it may EXECUTE. Build logs are gzip files in the
-- output directory (named after build_id), never rows in here.
--
-- Every change to this script must also go in an update script
-- (sql/update_piwheels_X_to_Y.sql; until 0.1.0 is released, in
-- update_piwheels_0.0.1_to_0.1.0.sql): tests/initdb checks that a database
-- upgraded from the first release equals one created by this script.

CREATE TABLE configuration (
    id              INTEGER DEFAULT 1 NOT NULL,
    version         VARCHAR(16) NOT NULL,
    pypi_serial     BIGINT DEFAULT 0 NOT NULL,
    -- packages.downloads_recent counts the downloads since midnight (UTC)
    -- of this day; roll_download_window() moves it along
    downloads_since DATE DEFAULT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC')::DATE - 30 NOT NULL,

    CONSTRAINT configuration_pk PRIMARY KEY (id),
    CONSTRAINT configuration_one_row CHECK (id = 1)
);

INSERT INTO configuration (id, version) VALUES (1, '0.1.0');

CREATE TABLE packages (
    package          VARCHAR(200) NOT NULL,
    skip             VARCHAR(200) DEFAULT '' NOT NULL,
    description      VARCHAR(200) DEFAULT '' NOT NULL,
    downloads_recent INTEGER DEFAULT 0 NOT NULL,
    downloads_all    BIGINT DEFAULT 0 NOT NULL,

    CONSTRAINT packages_pk PRIMARY KEY (package)
);

CREATE TABLE package_names (
    package VARCHAR(200) NOT NULL,
    name    VARCHAR(200) NOT NULL,
    seen    TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL,

    CONSTRAINT package_names_pk PRIMARY KEY (package, name),
    CONSTRAINT package_names_package_fk FOREIGN KEY (package)
        REFERENCES packages (package) ON DELETE CASCADE
);

CREATE TABLE versions (
    package         VARCHAR(200) NOT NULL,
    version         VARCHAR(200) NOT NULL,
    released        TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL,
    skip            VARCHAR(200) DEFAULT '' NOT NULL,
    yanked          BOOLEAN DEFAULT false NOT NULL,
    yank_reason     VARCHAR(200) DEFAULT '' NOT NULL,
    requires_python VARCHAR(200) DEFAULT '' NOT NULL,

    CONSTRAINT versions_pk PRIMARY KEY (package, version),
    CONSTRAINT versions_package_fk FOREIGN KEY (package)
        REFERENCES packages (package) ON DELETE CASCADE
);

CREATE INDEX versions_released ON versions (released);

CREATE TABLE build_abis (
    abi_tag VARCHAR(100) NOT NULL,
    skip    VARCHAR(200) DEFAULT '' NOT NULL,

    CONSTRAINT build_abis_pk PRIMARY KEY (abi_tag),
    CONSTRAINT build_abis_tag_ck CHECK (
        abi_tag ~ '^[a-z][a-z0-9_]*$' AND abi_tag NOT IN ('none', 'abi3'))
);

-- What a failed build's failure was; transient kinds are retried
CREATE TABLE build_failures (
    failure     VARCHAR(20) NOT NULL,
    transient   BOOLEAN NOT NULL,
    description VARCHAR(200) NOT NULL,

    CONSTRAINT build_failures_pk PRIMARY KEY (failure)
);

INSERT INTO build_failures (failure, transient, description) VALUES
    ('error',   false, 'the build failed'),
    ('timeout', true,  'the build outlived its time limit'),
    ('killed',  true,  'the build ran out of memory or was killed by a signal'),
    ('disk',    true,  'the build slave ran out of disk space'),
    ('network', true,  'the build could not download what it needed');

CREATE TABLE builds (
    build_id BIGINT GENERATED ALWAYS AS IDENTITY,
    package  VARCHAR(200) NOT NULL,
    version  VARCHAR(200) NOT NULL,
    abi_tag  VARCHAR(100) NOT NULL,
    built_by INTEGER NOT NULL,
    built_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL,
    duration INTERVAL NOT NULL,
    status   BOOLEAN NOT NULL,
    -- NULL on success
    failure  VARCHAR(20) NULL,
    -- 1 for the first build of this version for this ABI, 2 for its retry...
    attempt  INTEGER NOT NULL,
    -- a file of this build had the name of a published file but other bytes
    conflict BOOLEAN DEFAULT false NOT NULL,

    CONSTRAINT builds_pk PRIMARY KEY (build_id),
    CONSTRAINT builds_versions_fk FOREIGN KEY (package, version)
        REFERENCES versions (package, version) ON DELETE CASCADE,
    CONSTRAINT builds_build_abis_fk FOREIGN KEY (abi_tag)
        REFERENCES build_abis (abi_tag) ON DELETE RESTRICT,
    CONSTRAINT builds_failure_fk FOREIGN KEY (failure)
        REFERENCES build_failures (failure) ON DELETE RESTRICT,
    CONSTRAINT builds_failure_ck CHECK (status = (failure IS NULL)),
    CONSTRAINT builds_attempt_ck CHECK (attempt > 0)
);

CREATE INDEX builds_pkgverabi ON builds (package, version, abi_tag, build_id);
CREATE INDEX builds_built_at ON builds (built_at);

CREATE TABLE files (
    filename            VARCHAR(255) NOT NULL,
    build_id            BIGINT NOT NULL,
    filesize            BIGINT NOT NULL,
    filehash            CHAR(64) NOT NULL,
    package_tag         VARCHAR(200) NOT NULL,
    package_version_tag VARCHAR(200) NOT NULL,
    py_version_tag      VARCHAR(100) NOT NULL,
    abi_tag             VARCHAR(100) NOT NULL,
    platform_tag        VARCHAR(100) NOT NULL,
    requires_python     VARCHAR(200) DEFAULT '' NOT NULL,

    CONSTRAINT files_pk PRIMARY KEY (filename),
    CONSTRAINT files_builds_fk FOREIGN KEY (build_id)
        REFERENCES builds (build_id) ON DELETE CASCADE
);

CREATE INDEX files_build_id ON files (build_id);

CREATE TABLE dependencies (
    filename   VARCHAR(255) NOT NULL,
    tool       VARCHAR(10) NOT NULL,
    dependency VARCHAR(255) NOT NULL,

    CONSTRAINT dependencies_pk PRIMARY KEY (filename, tool, dependency),
    CONSTRAINT dependencies_files_fk FOREIGN KEY (filename)
        REFERENCES files (filename) ON DELETE CASCADE,
    CONSTRAINT dependencies_tool_ck CHECK (tool IN ('apt', 'pip'))
);

-- The history tables below have no foreign keys: what users did stays
-- recorded when a package goes away.

CREATE TABLE downloads (
    filename           VARCHAR(255) NOT NULL,
    -- the package the file belonged to when it was downloaded
    package            VARCHAR(200) NULL,
    host               VARCHAR(100) NOT NULL,
    accessed_at        TIMESTAMP WITH TIME ZONE NOT NULL,
    arch               VARCHAR(100) NULL,
    distro_name        VARCHAR(100) NULL,
    distro_version     VARCHAR(100) NULL,
    os_name            VARCHAR(100) NULL,
    os_version         VARCHAR(100) NULL,
    py_name            VARCHAR(100) NULL,
    py_version         VARCHAR(100) NULL,
    installer_name     VARCHAR(100) NULL,
    installer_version  VARCHAR(100) NULL,
    setuptools_version VARCHAR(100) NULL
);

CREATE INDEX downloads_accessed_at ON downloads (accessed_at);

CREATE TABLE searches (
    package            VARCHAR(200) NOT NULL,
    host               VARCHAR(100) NOT NULL,
    accessed_at        TIMESTAMP WITH TIME ZONE NOT NULL,
    arch               VARCHAR(100) NULL,
    distro_name        VARCHAR(100) NULL,
    distro_version     VARCHAR(100) NULL,
    os_name            VARCHAR(100) NULL,
    os_version         VARCHAR(100) NULL,
    py_name            VARCHAR(100) NULL,
    py_version         VARCHAR(100) NULL,
    installer_name     VARCHAR(100) NULL,
    installer_version  VARCHAR(100) NULL,
    setuptools_version VARCHAR(100) NULL
);

CREATE INDEX searches_accessed_at ON searches (accessed_at);

CREATE TABLE project_page_hits (
    package     VARCHAR(200) NOT NULL,
    host        VARCHAR(100) NOT NULL,
    accessed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    user_agent  VARCHAR(2000) NOT NULL
);

CREATE INDEX project_page_hits_accessed_at ON project_page_hits (accessed_at);

CREATE TABLE project_json_downloads (
    package     VARCHAR(200) NOT NULL,
    host        VARCHAR(100) NOT NULL,
    accessed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    user_agent  VARCHAR(2000) NOT NULL
);

CREATE INDEX project_json_downloads_accessed_at ON project_json_downloads (accessed_at);

CREATE TABLE web_page_hits (
    page        VARCHAR(200) NOT NULL,
    host        VARCHAR(100) NOT NULL,
    accessed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    user_agent  VARCHAR(2000) NOT NULL
);

CREATE INDEX web_page_hits_accessed_at ON web_page_hits (accessed_at);

-- TheSecretary's buffered page rewrites, kept across a master restart
CREATE TABLE rewrites_pending (
    package  VARCHAR(200) NOT NULL,
    added_at TIMESTAMP WITH TIME ZONE NOT NULL,
    command  VARCHAR(8) NOT NULL,

    CONSTRAINT rewrites_pending_pk PRIMARY KEY (package),
    CONSTRAINT rewrites_pending_command_ck CHECK (command IN ('PROJECT', 'BOTH'))
);

-- Rules of the build queue ---------------------------------------------------

-- How many times a version is tried for an ABI when it keeps failing for a
-- transient reason
CREATE FUNCTION max_build_attempts() RETURNS INTEGER
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $sql$
    SELECT 3
$sql$;

-- The Python version {major, minor} an ABI tag (cp39, cp311, cp37m,
-- cp313t, pypy39_pp73) or a CPython version tag runs; NULL when the tag
-- does not say. One expression, so that PostgreSQL inlines it into the
-- queries using it (a function with a FROM clause is executed apart for
-- every row: ~14 us each, over a thousand times per batch of pages)
CREATE FUNCTION abi_python_version(abi VARCHAR) RETURNS INTEGER[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $sql$
    SELECT regexp_match(abi, '^(?:cp|pp|pypy)(\d)(\d{1,3})')::INTEGER[]
$sql$;

-- Whether a Python of the ABI's minor version, whatever its micro version,
-- can satisfy the Requires-Python specifier set; what we cannot read never
-- excludes anything
CREATE FUNCTION python_accepts_abi(requires_python VARCHAR, abi VARCHAR)
    RETURNS BOOLEAN
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
DECLARE
    py       INTEGER[];
    clause   TEXT;
    m        TEXT[];
    op       TEXT;
    rel      INTEGER[];
    padded   INTEGER[];
    n        INTEGER;
    wildcard BOOLEAN;
    ok       BOOLEAN;
BEGIN
    IF coalesce(requires_python, '') = '' THEN
        RETURN true;
    END IF;
    py := abi_python_version(abi);
    IF py IS NULL THEN
        RETURN true;
    END IF;
    FOREACH clause IN ARRAY string_to_array(requires_python, ',') LOOP
        clause := btrim(clause);
        CONTINUE WHEN clause = '';
        m := regexp_match(
            clause, '^(~=|===|==|!=|<=|>=|<|>)\s*v?(\d{1,6}(?:\.\d{1,6})*)(\.\*)?');
        IF m IS NULL THEN
            RETURN true;
        END IF;
        op := m[1];
        rel := string_to_array(m[2], '.')::INTEGER[];
        n := cardinality(rel);
        wildcard := m[3] IS NOT NULL;
        padded := rel || array_fill(0, ARRAY[greatest(0, 3 - n)]);
        ok := CASE
            WHEN op IN ('>=', '>') THEN py >= padded[1:2]
            WHEN op = '<=' THEN py || 0 <= padded
            WHEN op = '<' THEN py || 0 < padded
            WHEN op IN ('==', '===') AND wildcard AND n = 1 THEN py[1] = rel[1]
            WHEN op IN ('==', '===') THEN py = padded[1:2]
            WHEN op = '!=' AND wildcard AND n = 1 THEN py[1] <> rel[1]
            WHEN op = '!=' AND wildcard AND n = 2 THEN py <> rel
            WHEN op = '!=' THEN true
            WHEN op = '~=' AND n = 1 THEN true
            WHEN op = '~=' AND n = 2 THEN py >= rel AND py[1] = rel[1]
            WHEN op = '~=' THEN py = rel[1:2]
        END;
        IF NOT ok THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$fn$;

-- Whether a file built for another ABI also serves abi: a file for no
-- particular ABI serves all of them, a stable-ABI (abi3) file serves every
-- CPython from its own version up
CREATE FUNCTION file_covers_abi(py_version_tag VARCHAR, file_abi VARCHAR, abi VARCHAR)
    RETURNS BOOLEAN
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $sql$
    SELECT file_abi = 'none' OR (
        file_abi = 'abi3' AND abi LIKE 'cp%'
        AND abi_python_version(abi) >= abi_python_version(py_version_tag))
$sql$;

-- The state of every version for every ABI: 'success', 'not applicable'
-- (Requires-Python excludes the ABI), 'skipped', 'failed' (for good) or
-- 'pending' (never tried, or retrying a transient failure), with the build
-- that decided it and what ordering the build queue needs
CREATE VIEW build_states AS
SELECT
    v.package,
    v.version,
    a.abi_tag,
    CASE
        WHEN ok.build_id IS NOT NULL THEN 'success'
        WHEN v.requires_python <> ''
            AND NOT python_accepts_abi(v.requires_python, a.abi_tag) THEN 'not applicable'
        WHEN p.skip <> '' OR v.skip <> '' OR a.skip <> '' THEN 'skipped'
        WHEN last.build_id IS NOT NULL
            AND (NOT last.transient OR last.attempt >= max_build_attempts()) THEN 'failed'
        ELSE 'pending'
    END AS status,
    COALESCE(ok.build_id, last.build_id) AS build_id,
    COALESCE(NULLIF(p.skip, ''), NULLIF(v.skip, ''), a.skip) AS skip,
    p.downloads_recent,
    v.released
FROM
    versions v
    JOIN packages p ON p.package = v.package
    CROSS JOIN build_abis a
    LEFT JOIN LATERAL (
        SELECT b.build_id
        FROM builds b
        WHERE b.package = v.package AND b.version = v.version AND b.status
        AND (
            b.abi_tag = a.abi_tag
            OR EXISTS (
                SELECT 1 FROM files f
                WHERE f.build_id = b.build_id
                AND file_covers_abi(f.py_version_tag, f.abi_tag, a.abi_tag)
            )
        )
        ORDER BY b.abi_tag = a.abi_tag DESC, b.build_id DESC
        LIMIT 1
    ) AS ok ON true
    LEFT JOIN LATERAL (
        SELECT b.build_id, b.attempt, f.transient
        FROM builds b LEFT JOIN build_failures f ON f.failure = b.failure
        WHERE b.package = v.package AND b.version = v.version AND b.abi_tag = a.abi_tag
        ORDER BY b.build_id DESC
        LIMIT 1
    ) AS last ON true;

-- The pending (version, ABI) pairs, kept up to date by the triggers below so
-- the queue for an ABI is one index scan however large the database grows.
-- priority is the package's downloads_recent.
CREATE TABLE build_queue (
    package  VARCHAR(200) NOT NULL,
    version  VARCHAR(200) NOT NULL,
    abi_tag  VARCHAR(100) NOT NULL,
    priority INTEGER NOT NULL,
    released TIMESTAMP WITH TIME ZONE NOT NULL,

    CONSTRAINT build_queue_pk PRIMARY KEY (package, version, abi_tag),
    CONSTRAINT build_queue_versions_fk FOREIGN KEY (package, version)
        REFERENCES versions (package, version) ON DELETE CASCADE,
    CONSTRAINT build_queue_build_abis_fk FOREIGN KEY (abi_tag)
        REFERENCES build_abis (abi_tag) ON DELETE CASCADE
);

CREATE INDEX build_queue_order
    ON build_queue (abi_tag, priority DESC, released DESC, package, version);

-- Recompute the queue entries of the given versions. Concurrent maintainers
-- of one version take turns (its row lock), and all of them wait while a
-- whole ABI is being queued (the advisory lock, exclusive in queue_abis):
-- each statement after the locks sees what the others committed.
CREATE FUNCTION queue_versions(pkgs VARCHAR[], vers VARCHAR[]) RETURNS VOID
    LANGUAGE plpgsql
    -- planned once a session (as SQL, its statements were planned again at
    -- every call, which cost ten times their running)
    SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('piwheels build_queue'));

    PERFORM 1
    FROM versions v JOIN unnest(pkgs, vers) AS t(package, version)
        ON v.package = t.package AND v.version = t.version
    ORDER BY v.package, v.version
    FOR NO KEY UPDATE OF v;

    DELETE FROM build_queue q
    USING unnest(pkgs, vers) AS t(package, version)
    WHERE q.package = t.package AND q.version = t.version;

    INSERT INTO build_queue (package, version, abi_tag, priority, released)
    SELECT s.package, s.version, s.abi_tag, s.downloads_recent, s.released
    FROM
        (SELECT DISTINCT * FROM unnest(pkgs, vers)) AS t(package, version)
        JOIN build_states s ON s.package = t.package AND s.version = t.version
    WHERE s.status = 'pending';
END
$fn$;

-- Recompute the queue entries of the given ABIs
CREATE FUNCTION queue_abis(abis VARCHAR[]) RETURNS VOID
    LANGUAGE sql
AS $sql$
    SELECT pg_advisory_xact_lock(hashtext('piwheels build_queue'));

    DELETE FROM build_queue WHERE abi_tag = ANY(abis);

    INSERT INTO build_queue (package, version, abi_tag, priority, released)
    SELECT s.package, s.version, s.abi_tag, s.downloads_recent, s.released
    FROM build_states s
    WHERE s.abi_tag = ANY(abis) AND s.status = 'pending';
$sql$;

-- Bring the queue's priorities of the given packages up to date
CREATE FUNCTION queue_priorities(pkgs VARCHAR[]) RETURNS VOID
    LANGUAGE sql
AS $sql$
    UPDATE build_queue q SET priority = p.downloads_recent
    FROM packages p
    WHERE p.package = ANY(pkgs) AND q.package = p.package
    AND q.priority <> p.downloads_recent;
$sql$;

-- The queue triggers: each hands the versions (or ABIs) a statement touched
-- to queue_versions (or queue_abis), once per statement
CREATE FUNCTION versions_inserted() RETURNS TRIGGER
    LANGUAGE plpgsql
AS $fn$
DECLARE
    pkgs VARCHAR[];
    vers VARCHAR[];
BEGIN
    SELECT array_agg(package), array_agg(version) INTO pkgs, vers FROM new_rows;
    PERFORM queue_versions(pkgs, vers);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER versions_inserted AFTER INSERT ON versions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION versions_inserted();

CREATE FUNCTION versions_updated() RETURNS TRIGGER
    LANGUAGE plpgsql
AS $fn$
DECLARE
    pkgs VARCHAR[];
    vers VARCHAR[];
BEGIN
    SELECT array_agg(n.package), array_agg(n.version) INTO pkgs, vers
    FROM new_rows n JOIN old_rows o ON o.package = n.package AND o.version = n.version
    WHERE (n.skip, n.requires_python, n.released)
        IS DISTINCT FROM (o.skip, o.requires_python, o.released);
    PERFORM queue_versions(pkgs, vers);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER versions_updated AFTER UPDATE ON versions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION versions_updated();

CREATE FUNCTION packages_updated() RETURNS TRIGGER
    LANGUAGE plpgsql
AS $fn$
DECLARE
    pkgs VARCHAR[];
    vers VARCHAR[];
BEGIN
    SELECT array_agg(v.package), array_agg(v.version) INTO pkgs, vers
    FROM
        (SELECT n.package FROM new_rows n JOIN old_rows o ON o.package = n.package
         WHERE n.skip <> o.skip) AS changed
        JOIN versions v ON v.package = changed.package;
    PERFORM queue_versions(pkgs, vers);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER packages_updated AFTER UPDATE ON packages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION packages_updated();

CREATE FUNCTION builds_inserted() RETURNS TRIGGER
    LANGUAGE plpgsql
AS $fn$
DECLARE
    pkgs VARCHAR[];
    vers VARCHAR[];
BEGIN
    SELECT array_agg(package), array_agg(version) INTO pkgs, vers FROM new_rows;
    PERFORM queue_versions(pkgs, vers);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER builds_inserted AFTER INSERT ON builds
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION builds_inserted();

CREATE FUNCTION builds_deleted() RETURNS TRIGGER
    LANGUAGE plpgsql
AS $fn$
DECLARE
    pkgs VARCHAR[];
    vers VARCHAR[];
BEGIN
    -- when the version itself is going, its queue entries go by cascade
    SELECT array_agg(o.package), array_agg(o.version) INTO pkgs, vers
    FROM old_rows o JOIN versions v ON v.package = o.package AND v.version = o.version;
    PERFORM queue_versions(pkgs, vers);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER builds_deleted AFTER DELETE ON builds
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION builds_deleted();

CREATE FUNCTION files_inserted() RETURNS TRIGGER
    LANGUAGE plpgsql
AS $fn$
DECLARE
    pkgs VARCHAR[];
    vers VARCHAR[];
BEGIN
    -- only files that serve other ABIs change what the queue holds
    SELECT array_agg(b.package), array_agg(b.version) INTO pkgs, vers
    FROM new_rows f JOIN builds b ON b.build_id = f.build_id
    WHERE f.abi_tag IN ('none', 'abi3');
    PERFORM queue_versions(pkgs, vers);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER files_inserted AFTER INSERT ON files
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION files_inserted();

CREATE FUNCTION build_abis_inserted() RETURNS TRIGGER
    LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM queue_abis(ARRAY(SELECT abi_tag FROM new_rows));
    RETURN NULL;
END
$fn$;

CREATE TRIGGER build_abis_inserted AFTER INSERT ON build_abis
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION build_abis_inserted();

CREATE FUNCTION build_abis_updated() RETURNS TRIGGER
    LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM queue_abis(ARRAY(
        SELECT n.abi_tag FROM new_rows n JOIN old_rows o ON o.abi_tag = n.abi_tag
        WHERE n.skip <> o.skip));
    RETURN NULL;
END
$fn$;

CREATE TRIGGER build_abis_updated AFTER UPDATE ON build_abis
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION build_abis_updated();

-- Download counting ---------------------------------------------------------

-- Move the 30-day window of packages.downloads_recent up to today,
-- subtracting the downloads that fell out of it
CREATE FUNCTION roll_download_window() RETURNS VOID
    LANGUAGE plpgsql
AS $fn$
DECLARE
    target  DATE := (CURRENT_TIMESTAMP AT TIME ZONE 'UTC')::DATE - 30;
    since   DATE;
    pkgs    VARCHAR[];
    counts  BIGINT[];
BEGIN
    SELECT downloads_since INTO since FROM configuration;
    IF since >= target THEN
        RETURN;
    END IF;
    -- wait for the download batches in flight: what they count must be
    -- visible to the subtraction below
    SELECT downloads_since INTO since FROM configuration FOR UPDATE;
    IF since >= target THEN
        RETURN;
    END IF;
    SELECT array_agg(package ORDER BY package), array_agg(n ORDER BY package)
    INTO pkgs, counts
    FROM (
        SELECT package, count(*) AS n
        FROM downloads
        WHERE accessed_at >= since::TIMESTAMP AT TIME ZONE 'UTC'
        AND accessed_at < target::TIMESTAMP AT TIME ZONE 'UTC'
        AND package IS NOT NULL
        GROUP BY package
    ) AS expired;
    PERFORM 1 FROM packages WHERE package = ANY(pkgs) ORDER BY package FOR UPDATE;
    UPDATE packages p SET downloads_recent = greatest(0, p.downloads_recent - e.n)
    FROM unnest(pkgs, counts) AS e(package, n)
    WHERE e.package = p.package;
    UPDATE configuration SET downloads_since = target;
    PERFORM queue_priorities(pkgs);
END
$fn$;

-- The API of piw-master: SECURITY DEFINER functions ------------------------

CREATE FUNCTION add_new_package(package VARCHAR, skip VARCHAR = '', description VARCHAR = '')
    RETURNS BOOLEAN
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $fn$
BEGIN
    INSERT INTO packages (package, skip, description)
    VALUES (package, left(coalesce(skip, ''), 200), left(coalesce(description, ''), 200))
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$fn$;

CREATE FUNCTION add_new_package_version(
    package VARCHAR, version VARCHAR, released TIMESTAMP WITH TIME ZONE = NULL,
    skip VARCHAR = '', requires_python VARCHAR = '')
    RETURNS BOOLEAN
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $fn$
BEGIN
    INSERT INTO versions (package, version, released, skip, requires_python)
    VALUES (
        package, version, coalesce(released, CURRENT_TIMESTAMP),
        left(coalesce(skip, ''), 200), left(coalesce(requires_python, ''), 200))
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$fn$;

CREATE FUNCTION add_package_name(package VARCHAR, name VARCHAR, seen TIMESTAMP WITH TIME ZONE)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    INSERT INTO package_names (package, name, seen)
    VALUES (package, name, seen)
    ON CONFLICT (package, name) DO UPDATE
        SET seen = greatest(package_names.seen, excluded.seen);
$sql$;

CREATE FUNCTION set_package_description(package VARCHAR, description VARCHAR)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    UPDATE packages SET description = left(coalesce($2, ''), 200) WHERE package = $1;
$sql$;

CREATE FUNCTION skip_package(package VARCHAR, reason VARCHAR)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    UPDATE packages SET skip = left(coalesce($2, ''), 200) WHERE package = $1;
$sql$;

CREATE FUNCTION skip_package_version(package VARCHAR, version VARCHAR, reason VARCHAR)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    UPDATE versions SET skip = left(coalesce($3, ''), 200)
    WHERE package = $1 AND version = $2;
$sql$;

CREATE FUNCTION yank_version(package VARCHAR, version VARCHAR, reason VARCHAR = '')
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    UPDATE versions SET yanked = true, yank_reason = left(coalesce($3, ''), 200)
    WHERE package = $1 AND version = $2;
$sql$;

CREATE FUNCTION unyank_version(package VARCHAR, version VARCHAR)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    UPDATE versions SET yanked = false, yank_reason = ''
    WHERE package = $1 AND version = $2;
$sql$;

CREATE FUNCTION set_version_requires_python(package VARCHAR, version VARCHAR, requires_python VARCHAR)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    UPDATE versions SET requires_python = left(coalesce($3, ''), 200)
    WHERE package = $1 AND version = $2;
$sql$;

CREATE FUNCTION delete_package(package VARCHAR)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    DELETE FROM packages WHERE package = $1;
$sql$;

CREATE FUNCTION delete_version(package VARCHAR, version VARCHAR)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    DELETE FROM versions WHERE package = $1 AND version = $2;
$sql$;

CREATE FUNCTION delete_build(package VARCHAR, version VARCHAR)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    DELETE FROM builds WHERE package = $1 AND version = $2;
$sql$;

CREATE FUNCTION set_pypi_serial(serial BIGINT)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    UPDATE configuration SET pypi_serial = $1 WHERE id = 1;
$sql$;

-- Record a batch of build attempts and the files they produced, with one
-- statement per table for the whole batch (so the build queue's triggers
-- run once per batch, not once per build). builds is a JSON array of
-- objects with the builds table's package, version, abi_tag, built_by,
-- duration (in seconds), status and failure, and files: an array of
-- objects with the files table's columns and "dependencies" (an object
-- mapping a tool to a list of names). Returns one row per file of each
-- build (build_index is the build's position in the array, from 1) saying
-- what became of it: 'new' (registered), 'same' (identical to the
-- published file of that name) or 'conflict' (the published file of that
-- name has other bytes and stays; the build is marked with a conflict); a
-- build without files returns one row with NULLs.
CREATE FUNCTION log_builds(builds JSONB)
    RETURNS TABLE (build_index INTEGER, build_id BIGINT, filename VARCHAR, outcome VARCHAR)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    -- the planner cannot tell how many builds and files the JSON holds, and
    -- its guess would have every batch compiled by the JIT (a second or so);
    -- the plans are made once a session
    SET jit = off SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    pkgs          VARCHAR[];
    vers          VARCHAR[];
    learnt        VARCHAR[];
    build_idxs    INTEGER[];
    build_ids     BIGINT[];
    file_idxs     INTEGER[];
    file_names    VARCHAR[];
    file_outcomes VARCHAR[];
BEGIN
    -- builds of one version are logged one batch at a time, so attempts
    -- count true; the versions are locked in one order, so concurrent
    -- batches cannot deadlock (the versions go through arrays, whose rows
    -- the planner expects few of: each is looked up by the index)
    SELECT array_agg(b.package), array_agg(b.version) INTO pkgs, vers
    FROM jsonb_to_recordset(log_builds.builds) AS b(package VARCHAR, version VARCHAR);
    PERFORM 1
    FROM versions v JOIN unnest(pkgs, vers) AS t(package, version)
        ON v.package = t.package AND v.version = t.version
    ORDER BY v.package, v.version
    FOR NO KEY UPDATE OF v;

    WITH input AS (
        SELECT
            e.idx::INTEGER AS idx, b.package, b.version, b.abi_tag, b.built_by,
            make_interval(secs => b.duration) AS duration, b.status,
            CASE WHEN b.status THEN NULL ELSE coalesce(NULLIF(b.failure, ''), 'error') END AS failure,
            (SELECT count(*) FROM builds o
             WHERE o.package = b.package AND o.version = b.version AND o.abi_tag = b.abi_tag)
            + row_number() OVER (
                PARTITION BY b.package, b.version, b.abi_tag ORDER BY e.idx) AS attempt
        FROM
            jsonb_array_elements(log_builds.builds) WITH ORDINALITY AS e(build, idx)
            CROSS JOIN LATERAL jsonb_to_record(e.build) AS b(
                package VARCHAR, version VARCHAR, abi_tag VARCHAR, built_by INTEGER,
                duration DOUBLE PRECISION, status BOOLEAN, failure VARCHAR)
    ), inserted AS (
        INSERT INTO builds (package, version, abi_tag, built_by, duration, status, failure, attempt)
        SELECT i.package, i.version, i.abi_tag, i.built_by, i.duration, i.status, i.failure, i.attempt
        FROM input i
        ORDER BY i.idx
        RETURNING builds.build_id, builds.package, builds.version, builds.abi_tag, builds.attempt
    )
    -- (package, version, abi_tag, attempt) tells the new builds apart
    SELECT array_agg(i.idx ORDER BY i.idx), array_agg(n.build_id ORDER BY i.idx)
    INTO build_idxs, build_ids
    FROM input i JOIN inserted n
        ON n.package = i.package AND n.version = i.version
        AND n.abi_tag = i.abi_tag AND n.attempt = i.attempt;

    WITH file AS (
        SELECT n.idx, n.build_id, f.*
        FROM
            jsonb_array_elements(log_builds.builds) WITH ORDINALITY AS e(build, idx)
            JOIN unnest(build_idxs, build_ids) AS n(idx, build_id) ON n.idx = e.idx
            CROSS JOIN LATERAL jsonb_to_recordset(e.build -> 'files') AS f(
                filename VARCHAR, filesize BIGINT, filehash CHAR(64),
                package_tag VARCHAR, package_version_tag VARCHAR, py_version_tag VARCHAR,
                abi_tag VARCHAR, platform_tag VARCHAR, requires_python VARCHAR,
                dependencies JSONB)
    ), registered AS (
        INSERT INTO files (
            filename, build_id, filesize, filehash, package_tag, package_version_tag,
            py_version_tag, abi_tag, platform_tag, requires_python)
        SELECT
            f.filename, f.build_id, f.filesize, f.filehash, f.package_tag,
            f.package_version_tag, f.py_version_tag, f.abi_tag, f.platform_tag,
            left(coalesce(f.requires_python, ''), 200)
        FROM file f
        ORDER BY f.idx
        ON CONFLICT DO NOTHING
        RETURNING files.filename, files.build_id, files.filehash
    ), dependencies_registered AS (
        INSERT INTO dependencies (filename, tool, dependency)
        SELECT DISTINCT f.filename, d.key, jsonb_array_elements_text(d.value)
        FROM
            file f
            JOIN registered r ON r.filename = f.filename AND r.build_id = f.build_id
            CROSS JOIN LATERAL jsonb_each(coalesce(f.dependencies, '{}'::JSONB)) AS d
    )
    SELECT
        array_agg(f.idx ORDER BY f.idx, f.filename),
        array_agg(f.filename ORDER BY f.idx, f.filename),
        array_agg(CASE
            WHEN mine.filename IS NOT NULL THEN 'new'
            -- the file of that name published before, or by another build
            -- of this batch
            WHEN coalesce(
                (SELECT r.filehash FROM registered r WHERE r.filename = f.filename),
                (SELECT p.filehash FROM files p WHERE p.filename = f.filename)
            ) = f.filehash THEN 'same'
            ELSE 'conflict'
        END ORDER BY f.idx, f.filename)
    INTO file_idxs, file_names, file_outcomes
    FROM file f
    LEFT JOIN registered mine ON mine.filename = f.filename AND mine.build_id = f.build_id;

    UPDATE builds b SET conflict = true
    FROM unnest(file_idxs, file_outcomes) AS o(idx, outcome)
    WHERE o.outcome = 'conflict' AND b.build_id = build_ids[o.idx];

    -- a wheel carries its sdist's Requires-Python: learn it for the version,
    -- so the ABIs it excludes stop being scheduled
    SELECT array_agg(r.package), array_agg(r.version), array_agg(r.requires_python)
    INTO pkgs, vers, learnt
    FROM (
        SELECT DISTINCT ON (b.package, b.version)
            b.package, b.version, left(f.file ->> 'requires_python', 200) AS requires_python
        FROM
            jsonb_array_elements(log_builds.builds) WITH ORDINALITY AS e(build, idx)
            CROSS JOIN LATERAL jsonb_to_record(e.build) AS b(
                package VARCHAR, version VARCHAR, status BOOLEAN)
            CROSS JOIN LATERAL jsonb_array_elements(e.build -> 'files') WITH ORDINALITY AS f(file, n)
        WHERE b.status AND coalesce(f.file ->> 'requires_python', '') <> ''
        ORDER BY b.package, b.version, e.idx, f.n
    ) AS r;
    UPDATE versions v SET requires_python = r.requires_python
    FROM unnest(pkgs, vers, learnt) AS r(package, version, requires_python)
    WHERE v.package = r.package AND v.version = r.version AND v.requires_python = '';

    RETURN QUERY
    SELECT n.idx, n.build_id, o.filename, o.outcome
    FROM
        unnest(build_idxs, build_ids) AS n(idx, build_id)
        LEFT JOIN unnest(file_idxs, file_names, file_outcomes) AS o(idx, filename, outcome)
            ON o.idx = n.idx
    ORDER BY n.idx, o.filename;
END
$fn$;

-- The log batch functions take a JSON array of hits, each an array of the
-- fields of piw-logger's record in order (piwheels.protocols.DownloadState,
-- SearchState, ProjectState, JSONState, PageState): the logger sends
-- thousands per call, and arrays are the quickest JSON to make and read
CREATE FUNCTION log_downloads(hits JSONB)
    RETURNS VOID
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $fn$
DECLARE
    since   DATE;
    pkgs    VARCHAR[];
    alls    BIGINT[];
    recents BIGINT[];
BEGIN
    PERFORM roll_download_window();
    -- a window roll must not run between counting and committing
    SELECT downloads_since INTO since FROM configuration FOR SHARE;
    WITH hit AS (
        SELECT h ->> 0 AS filename, h FROM jsonb_array_elements(hits) AS h
    ), file AS (
        -- a batch downloads the same few files many times: look each up once
        SELECT n.filename, b.package
        FROM (SELECT DISTINCT filename FROM hit) AS n
        JOIN files f ON f.filename = n.filename
        JOIN builds b ON b.build_id = f.build_id
    ), inserted AS (
        INSERT INTO downloads (
            filename, package, host, accessed_at, arch, distro_name, distro_version,
            os_name, os_version, py_name, py_version, installer_name,
            installer_version, setuptools_version)
        SELECT
            hit.filename, file.package,
            left(h ->> 1, 100), (h ->> 2)::TIMESTAMP WITH TIME ZONE,
            left(h ->> 3, 100), left(h ->> 4, 100), left(h ->> 5, 100),
            left(h ->> 6, 100), left(h ->> 7, 100), left(h ->> 8, 100),
            left(h ->> 9, 100), left(h ->> 10, 100), left(h ->> 11, 100),
            left(h ->> 12, 100)
        FROM hit LEFT JOIN file ON file.filename = hit.filename
        RETURNING package, accessed_at
    )
    SELECT
        array_agg(package ORDER BY package),
        array_agg(n_all ORDER BY package),
        array_agg(n_recent ORDER BY package)
    INTO pkgs, alls, recents
    FROM (
        SELECT
            package,
            count(*) AS n_all,
            count(*) FILTER (
                WHERE accessed_at >= since::TIMESTAMP AT TIME ZONE 'UTC') AS n_recent
        FROM inserted
        WHERE package IS NOT NULL
        GROUP BY package
    ) AS counted;
    -- lock in one order so concurrent batches cannot deadlock
    PERFORM 1 FROM packages WHERE package = ANY(pkgs) ORDER BY package FOR UPDATE;
    UPDATE packages p SET
        downloads_all = p.downloads_all + c.n_all,
        downloads_recent = p.downloads_recent + c.n_recent
    FROM unnest(pkgs, alls, recents) AS c(package, n_all, n_recent)
    WHERE c.package = p.package;
    PERFORM queue_priorities(pkgs);
END
$fn$;

CREATE FUNCTION log_searches(hits JSONB)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    INSERT INTO searches (
        package, host, accessed_at, arch, distro_name, distro_version, os_name,
        os_version, py_name, py_version, installer_name, installer_version,
        setuptools_version)
    SELECT
        h ->> 0, left(h ->> 1, 100), (h ->> 2)::TIMESTAMP WITH TIME ZONE,
        left(h ->> 3, 100), left(h ->> 4, 100), left(h ->> 5, 100),
        left(h ->> 6, 100), left(h ->> 7, 100), left(h ->> 8, 100),
        left(h ->> 9, 100), left(h ->> 10, 100), left(h ->> 11, 100),
        left(h ->> 12, 100)
    FROM jsonb_array_elements(hits) AS h;
$sql$;

CREATE FUNCTION log_project_hits(hits JSONB)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    INSERT INTO project_page_hits (package, host, accessed_at, user_agent)
    SELECT
        h ->> 0, left(h ->> 1, 100), (h ->> 2)::TIMESTAMP WITH TIME ZONE,
        left(h ->> 3, 2000)
    FROM jsonb_array_elements(hits) AS h;
$sql$;

CREATE FUNCTION log_json_hits(hits JSONB)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    INSERT INTO project_json_downloads (package, host, accessed_at, user_agent)
    SELECT
        h ->> 0, left(h ->> 1, 100), (h ->> 2)::TIMESTAMP WITH TIME ZONE,
        left(h ->> 3, 2000)
    FROM jsonb_array_elements(hits) AS h;
$sql$;

CREATE FUNCTION log_page_hits(hits JSONB)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    INSERT INTO web_page_hits (page, host, accessed_at, user_agent)
    SELECT
        left(h ->> 0, 200), left(h ->> 1, 100), (h ->> 2)::TIMESTAMP WITH TIME ZONE,
        left(h ->> 3, 2000)
    FROM jsonb_array_elements(hits) AS h;
$sql$;

-- Replace TheSecretary's saved queue; rows is a JSON array of objects with
-- the table's columns
CREATE FUNCTION save_rewrites_pending(rows JSONB)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    DELETE FROM rewrites_pending;
    INSERT INTO rewrites_pending (package, added_at, command)
    SELECT package, added_at, command
    FROM jsonb_to_recordset(rows) AS r(
        package VARCHAR, added_at TIMESTAMP WITH TIME ZONE, command VARCHAR);
$sql$;

-- Up to lim pending versions per active ABI, most downloaded package first,
-- then newest release first: one row per ABI (in Python version order) with
-- the packages and versions in two arrays of the same order
CREATE FUNCTION get_build_queue(lim INTEGER)
    RETURNS TABLE (abi_tag VARCHAR, packages VARCHAR[], versions VARCHAR[])
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    SELECT
        a.abi_tag,
        coalesce(q.packages, '{}'),
        coalesce(q.versions, '{}')
    FROM
        build_abis a
        CROSS JOIN LATERAL (
            SELECT
                array_agg(top.package ORDER BY
                    top.priority DESC, top.released DESC, top.package, top.version)
                    AS packages,
                array_agg(top.version ORDER BY
                    top.priority DESC, top.released DESC, top.package, top.version)
                    AS versions
            FROM (
                SELECT q.package, q.version, q.priority, q.released
                FROM build_queue q
                WHERE q.abi_tag = a.abi_tag
                ORDER BY q.priority DESC, q.released DESC, q.package, q.version
                LIMIT lim
            ) AS top
        ) AS q
    WHERE a.skip = ''
    ORDER BY abi_python_version(a.abi_tag), a.abi_tag;
$sql$;

-- The statistics that need more than the master may read
CREATE FUNCTION get_statistics()
    RETURNS TABLE (
        packages_built BIGINT, builds_time INTERVAL, builds_size BIGINT,
        new_last_hour BIGINT, files_count BIGINT, downloads_last_hour BIGINT,
        downloads_last_month BIGINT, downloads_all BIGINT)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $fn$
BEGIN
    PERFORM roll_download_window();
    RETURN QUERY SELECT
        (SELECT count(*) FROM packages p WHERE EXISTS (
            SELECT 1 FROM builds b WHERE b.package = p.package AND b.status)),
        (SELECT coalesce(sum(b.duration), INTERVAL '0') FROM builds b),
        (SELECT coalesce(sum(f.filesize), 0)::BIGINT FROM files f),
        (SELECT count(*) FROM versions v
         WHERE v.released > CURRENT_TIMESTAMP - INTERVAL '1 hour'),
        (SELECT count(*) FROM files),
        (SELECT count(*) FROM downloads d
         WHERE d.accessed_at > CURRENT_TIMESTAMP - INTERVAL '1 hour'),
        (SELECT coalesce(sum(p.downloads_recent), 0)::BIGINT FROM packages p),
        (SELECT coalesce(sum(p.downloads_all), 0)::BIGINT FROM packages p);
END
$fn$;

-- Every package but those marked for deletion, with its downloads in the
-- last 30 days and in all
CREATE FUNCTION get_search_index()
    RETURNS TABLE (package VARCHAR, downloads_recent INTEGER, downloads_all BIGINT)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $fn$
BEGIN
    PERFORM roll_download_window();
    RETURN QUERY
        SELECT p.package, p.downloads_recent, p.downloads_all
        FROM packages p
        WHERE p.skip <> 'deleted'
        ORDER BY p.downloads_recent DESC, p.package;
END
$fn$;

-- Privileges --------------------------------------------------------------

REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {username};

DO $do$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$do$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;

GRANT SELECT ON
    configuration, packages, package_names, versions, build_abis,
    build_failures, builds, files, dependencies, rewrites_pending,
    build_queue, build_states
TO {username};

GRANT EXECUTE ON FUNCTION
    add_new_package(VARCHAR, VARCHAR, VARCHAR),
    add_new_package_version(VARCHAR, VARCHAR, TIMESTAMP WITH TIME ZONE, VARCHAR, VARCHAR),
    add_package_name(VARCHAR, VARCHAR, TIMESTAMP WITH TIME ZONE),
    set_package_description(VARCHAR, VARCHAR),
    skip_package(VARCHAR, VARCHAR),
    skip_package_version(VARCHAR, VARCHAR, VARCHAR),
    yank_version(VARCHAR, VARCHAR, VARCHAR),
    unyank_version(VARCHAR, VARCHAR),
    set_version_requires_python(VARCHAR, VARCHAR, VARCHAR),
    delete_package(VARCHAR),
    delete_version(VARCHAR, VARCHAR),
    delete_build(VARCHAR, VARCHAR),
    set_pypi_serial(BIGINT),
    log_builds(JSONB),
    log_downloads(JSONB),
    log_searches(JSONB),
    log_project_hits(JSONB),
    log_json_hits(JSONB),
    log_page_hits(JSONB),
    save_rewrites_pending(JSONB),
    get_build_queue(INTEGER),
    get_statistics(),
    get_search_index(),
    max_build_attempts(),
    abi_python_version(VARCHAR),
    python_accepts_abi(VARCHAR, VARCHAR),
    file_covers_abi(VARCHAR, VARCHAR, VARCHAR)
TO {username};
