-- Upgrade the piwheels database from version 0.0.1 to 0.1.0: builds count
-- their attempts so transient failures are retried (a bounded number of
-- times), and record a conflict when a file had the name of a published
-- file but other bytes; log_build says what became of each file.

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

DROP FUNCTION log_build(VARCHAR, VARCHAR, VARCHAR, INTEGER, INTERVAL, BOOLEAN, VARCHAR, JSONB);

-- Record a build attempt and the files it produced; files is a JSON array
-- of objects with the files table's columns and "dependencies" (an object
-- mapping a tool to a list of names). Returns one row per file saying what
-- became of it: 'new' (registered), 'same' (identical to the published file
-- of that name) or 'conflict' (the published file of that name has other
-- bytes and stays); a build without files returns one row with NULLs.
CREATE FUNCTION log_build(
    package VARCHAR, version VARCHAR, abi_tag VARCHAR, built_by INTEGER,
    duration INTERVAL, status BOOLEAN, failure VARCHAR, files JSONB)
    RETURNS TABLE (build_id BIGINT, filename VARCHAR, outcome VARCHAR)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    new_id BIGINT;
    f      RECORD;
    known  CHAR(64);
BEGIN
    -- builds of one version are logged one at a time, so attempts count true
    PERFORM 1 FROM versions v
    WHERE v.package = log_build.package AND v.version = log_build.version
    FOR NO KEY UPDATE;
    INSERT INTO builds (package, version, abi_tag, built_by, duration, status, failure, attempt)
    VALUES (
        log_build.package, log_build.version, log_build.abi_tag, log_build.built_by,
        log_build.duration, log_build.status,
        CASE WHEN log_build.status THEN NULL ELSE coalesce(NULLIF(log_build.failure, ''), 'error') END,
        1 + (SELECT count(*) FROM builds b
             WHERE b.package = log_build.package AND b.version = log_build.version
             AND b.abi_tag = log_build.abi_tag))
    RETURNING builds.build_id INTO new_id;

    IF coalesce(jsonb_array_length(log_build.files), 0) = 0 THEN
        RETURN QUERY SELECT new_id, NULL::VARCHAR, NULL::VARCHAR;
        RETURN;
    END IF;

    FOR f IN
        SELECT * FROM jsonb_to_recordset(log_build.files) AS x(
            filename VARCHAR, filesize BIGINT, filehash CHAR(64),
            package_tag VARCHAR, package_version_tag VARCHAR, py_version_tag VARCHAR,
            abi_tag VARCHAR, platform_tag VARCHAR, requires_python VARCHAR,
            dependencies JSONB)
    LOOP
        INSERT INTO files (
            filename, build_id, filesize, filehash, package_tag, package_version_tag,
            py_version_tag, abi_tag, platform_tag, requires_python)
        VALUES (
            f.filename, new_id, f.filesize, f.filehash, f.package_tag,
            f.package_version_tag, f.py_version_tag, f.abi_tag, f.platform_tag,
            left(coalesce(f.requires_python, ''), 200))
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            INSERT INTO dependencies (filename, tool, dependency)
            SELECT DISTINCT f.filename, d.key, jsonb_array_elements_text(d.value)
            FROM jsonb_each(coalesce(f.dependencies, '{}'::JSONB)) AS d;
            RETURN QUERY SELECT new_id, f.filename, 'new'::VARCHAR;
        ELSE
            SELECT filehash INTO known FROM files WHERE filename = f.filename;
            IF known = f.filehash THEN
                RETURN QUERY SELECT new_id, f.filename, 'same'::VARCHAR;
            ELSE
                UPDATE builds SET conflict = true WHERE builds.build_id = new_id;
                RETURN QUERY SELECT new_id, f.filename, 'conflict'::VARCHAR;
            END IF;
        END IF;
    END LOOP;

    -- a wheel carries its sdist's Requires-Python: learn it for the version,
    -- so the ABIs it excludes stop being scheduled
    UPDATE versions v SET requires_python = r.requires_python
    FROM (
        SELECT x.requires_python
        FROM jsonb_to_recordset(log_build.files) AS x(requires_python VARCHAR)
        WHERE coalesce(x.requires_python, '') <> ''
        LIMIT 1
    ) AS r
    WHERE v.package = log_build.package AND v.version = log_build.version
    AND v.requires_python = '' AND log_build.status;
END
$fn$;

-- failed builds of a transient kind are pending again under the new rules
SELECT queue_abis(ARRAY(SELECT abi_tag FROM build_abis));

REVOKE ALL ON FUNCTION
    max_build_attempts(),
    log_build(VARCHAR, VARCHAR, VARCHAR, INTEGER, INTERVAL, BOOLEAN, VARCHAR, JSONB)
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    max_build_attempts(),
    log_build(VARCHAR, VARCHAR, VARCHAR, INTEGER, INTERVAL, BOOLEAN, VARCHAR, JSONB)
TO {username};

UPDATE configuration SET version = '0.1.0';
