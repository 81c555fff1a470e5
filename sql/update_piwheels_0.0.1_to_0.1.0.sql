-- Upgrade the piwheels database from version 0.0.1 to 0.1.0: builds count
-- their attempts so transient failures are retried (a bounded number of
-- times), and record a conflict when a file had the name of a published
-- file but other bytes; log_builds says what became of each file.

ALTER TABLE builds ADD COLUMN attempt INTEGER;

UPDATE builds b SET attempt = numbered.attempt
FROM (
    SELECT build_id, row_number() OVER (
        PARTITION BY package, version, abi_tag ORDER BY build_id) AS attempt
    FROM builds
) AS numbered
WHERE numbered.build_id = b.build_id;

ALTER TABLE builds ALTER COLUMN attempt SET NOT NULL;
ALTER TABLE builds ADD COLUMN conflict BOOLEAN DEFAULT false NOT NULL;
ALTER TABLE builds ADD CONSTRAINT builds_attempt_ck CHECK (attempt > 0);

-- How many times a version is tried for an ABI when it keeps failing for a
-- transient reason
CREATE FUNCTION max_build_attempts() RETURNS INTEGER
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $sql$
    SELECT 3
$sql$;

-- The Python version of an ABI tag as one expression, which PostgreSQL
-- inlines into the queries using it
CREATE OR REPLACE FUNCTION abi_python_version(abi VARCHAR) RETURNS INTEGER[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $sql$
    SELECT regexp_match(abi, '^(?:cp|pp|pypy)(\d)(\d{1,3})')::INTEGER[]
$sql$;

-- The state of every version for every ABI: 'success', 'not applicable'
-- (Requires-Python excludes the ABI), 'skipped', 'failed' (for good) or
-- 'pending' (never tried, or retrying a transient failure), with the build
-- that decided it and what ordering the build queue needs
CREATE OR REPLACE VIEW build_states AS
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

-- The queue's maintenance is PL/pgSQL, its plans made once a session
CREATE OR REPLACE FUNCTION queue_versions(pkgs VARCHAR[], vers VARCHAR[]) RETURNS VOID
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

DROP FUNCTION log_build(VARCHAR, VARCHAR, VARCHAR, INTEGER, INTERVAL, BOOLEAN, VARCHAR, JSONB);

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

-- piw-logger's hits arrive as arrays (see create_piwheels.sql)
CREATE OR REPLACE FUNCTION log_downloads(hits JSONB)
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

CREATE OR REPLACE FUNCTION log_searches(hits JSONB)
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

CREATE OR REPLACE FUNCTION log_project_hits(hits JSONB)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    INSERT INTO project_page_hits (package, host, accessed_at, user_agent)
    SELECT
        h ->> 0, left(h ->> 1, 100), (h ->> 2)::TIMESTAMP WITH TIME ZONE,
        left(h ->> 3, 2000)
    FROM jsonb_array_elements(hits) AS h;
$sql$;

CREATE OR REPLACE FUNCTION log_json_hits(hits JSONB)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    INSERT INTO project_json_downloads (package, host, accessed_at, user_agent)
    SELECT
        h ->> 0, left(h ->> 1, 100), (h ->> 2)::TIMESTAMP WITH TIME ZONE,
        left(h ->> 3, 2000)
    FROM jsonb_array_elements(hits) AS h;
$sql$;

CREATE OR REPLACE FUNCTION log_page_hits(hits JSONB)
    RETURNS VOID
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $sql$
    INSERT INTO web_page_hits (page, host, accessed_at, user_agent)
    SELECT
        left(h ->> 0, 200), left(h ->> 1, 100), (h ->> 2)::TIMESTAMP WITH TIME ZONE,
        left(h ->> 3, 2000)
    FROM jsonb_array_elements(hits) AS h;
$sql$;

-- failed builds of a transient kind are pending again under the new rules
SELECT queue_abis(ARRAY(SELECT abi_tag FROM build_abis));

REVOKE ALL ON FUNCTION
    max_build_attempts(),
    log_builds(JSONB)
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    max_build_attempts(),
    log_builds(JSONB)
TO {username};

UPDATE configuration SET version = '0.1.0';
