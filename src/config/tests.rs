//! Unit tests of the configuration: defaults, validation, error messages and secrets.

use std::path::{Path, PathBuf};

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.watch.dir, "confrontas");
    assert_eq!(config.watch.settle_ms, 500);
    assert_eq!(config.watch.orphan_after_s, 86_400);
    assert_eq!(config.database.table, "telefonica_ventaportabilidad");
    assert_eq!(config.minio.bucket, "telefonica-crea-online");
    assert_eq!(config.pipeline.max_in_flight, 16);
    assert_eq!(config.minio.public_base_url(), "http://127.0.0.1:9000");
}

#[test]
fn the_documented_sample_config_parses() {
    let config = Config::parse(include_str!("../../config.toml"), Path::new("config.toml")).unwrap();
    assert_eq!(config.minio.object_name, crate::object_name::DEFAULT_TEMPLATE);
    assert_eq!(config.database.columns.sha256, "confronta_sha256");
}

/// Issue 17, item 7: sizes S3 can never take are refused when the config is read.
#[test]
fn part_sizes_and_max_bytes_beyond_s3_s_limits_are_refused() {
    let big_part = MINIMAL.replace("[minio]", "[minio]\npart_size_bytes = 6442450944");
    let err = parse(&big_part).unwrap_err();
    assert!(err.contains("minio.part_size_bytes") && err.contains("maximum"), "{err}");
    let huge = MINIMAL.replace("[journal]", "[validation]\nmax_bytes = 6597069766657\n[journal]");
    let err = parse(&huge).unwrap_err();
    assert!(err.contains("validation.max_bytes") && err.contains("largest object"), "{err}");
}

/// Issue 17 item 8: the watchdog's stall bound has a default, and one too short to outlast
/// a slow part upload is refused.
#[test]
fn the_stall_timeout_defaults_to_ten_minutes_and_has_a_floor() {
    assert_eq!(parse(MINIMAL).unwrap().service.stall_timeout_s, 600);
    let err = parse(&format!("{MINIMAL}\n[service]\nstall_timeout_s = 5\n")).unwrap_err();
    assert!(err.contains("service.stall_timeout_s") && err.contains("30"), "{err}");
    let config = parse(&format!("{MINIMAL}\n[service]\nstall_timeout_s = 30\n")).unwrap();
    assert_eq!(config.service.stall_timeout_s, 30);
}

#[test]
fn unknown_key_is_named_in_the_error() {
    let text = MINIMAL.replace("[watch]", "[watch]\nsetle_ms = 3");
    let err = parse(&text).unwrap_err();
    assert!(err.contains("setle_ms"), "{err}");
    // `toml`'s own rendering: the file, the line and column, and the line itself.
    assert!(err.starts_with("invalid config test.toml: "), "{err}");
    assert!(err.contains("line 3, column 1") && err.contains("3 | setle_ms = 3"), "{err}");
}

/// Issue 24 item 8: a bad level is refused at load, so a reload carrying one changes nothing.
#[test]
fn a_log_level_that_is_no_filter_is_refused_naming_the_key() {
    let err = parse(&format!("{MINIMAL}\n[log]\nlevel = \"debug,[\"\n")).unwrap_err();
    assert!(err.contains("log.level"), "{err}");
    let config = parse(&format!("{MINIMAL}\n[log]\nlevel = \"warn,confronta_sync=debug\"\n")).unwrap();
    assert_eq!(config.log.level, "warn,confronta_sync=debug");
}

#[test]
fn unknown_table_is_named_in_the_error() {
    let err = parse(&format!("{MINIMAL}\n[extra]\nx = 1")).unwrap_err();
    assert!(err.contains("extra"), "{err}");
}

#[test]
fn table_name_must_be_an_identifier() {
    let text = MINIMAL.replace("[database]", "[database]\ntable = \"x; drop table y\"");
    let err = parse(&text).unwrap_err();
    assert!(err.contains("database.table"), "{err}");
}

#[test]
fn database_deadlines_have_defaults_and_are_checked() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.database.statement_timeout_ms, 30_000);
    assert_eq!(config.database.lock_timeout_ms, 2_000);
    assert_eq!(config.database.pool_size, 4);
    for (line, key) in [
        ("lock_timeout_ms = 60000", "database.lock_timeout_ms"),
        ("statement_timeout_ms = 0", "database.statement_timeout_ms"),
        ("pool_size = 0", "database.pool_size"),
        ("connect_timeout_s = 0", "database.connect_timeout_s"),
    ] {
        let err = parse(&MINIMAL.replace("[database]", &format!("[database]\n{line}"))).unwrap_err();
        assert!(err.contains(key), "{line}: {err}");
    }
}

/// Issue 12 item 5: MEDIA_ROOT is served at /media/, so a refused file kept under it would
/// stay downloadable.
#[test]
fn the_default_quarantine_is_beside_the_journal_outside_media_root() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.quarantine_dir(), PathBuf::from("/var/lib/confronta-sync/quarantine"));
}

#[test]
fn a_quarantine_dir_inside_media_root_is_refused() {
    let configured = MINIMAL
        .replace("[journal]", "[validation]\nquarantine_dir = \"/srv/crm/media/cuarentena\"\n[journal]");
    // The default follows the journal, so a journal under MEDIA_ROOT is refused the same way.
    let defaulted = MINIMAL.replace("/var/lib/confronta-sync/", "/srv/crm/media/state/");
    for text in [configured, defaulted] {
        let err = parse(&text).unwrap_err();
        assert!(err.contains("validation.quarantine_dir") && err.contains("media_root"), "{err}");
    }
}

#[test]
fn database_password_is_redacted_in_debug_output() {
    let text = MINIMAL.replace("sqlite:///srv/crm/db.sqlite3", "postgres://crm:hunter2@127.0.0.1:5432/crm");
    let config = parse(&text).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

#[test]
fn secret_debug_hides_the_value() {
    assert_eq!(format!("{:?}", Secret::new("s3cr3t")), "Secret(<redacted>)");
}

#[test]
fn redact_url_hides_every_form_of_password() {
    let cases = [
        ("postgres://crm:hunter2@db:5432/crm", "postgres://crm:redacted@db:5432/crm"),
        ("postgres://crm@db/crm?password=hunter2", "postgres://crm@db/crm?password=redacted"),
        (
            "postgres://crm@db/crm?sslmode=require&password=hunter2",
            "postgres://crm@db/crm?sslmode=require&password=redacted",
        ),
        (
            "postgres://crm@db/crm?PassWord=hunter2&application_name=sync",
            "postgres://crm@db/crm?PassWord=redacted&application_name=sync",
        ),
        ("postgresql://crm@db/crm?PASSWORD=hunter2", "postgresql://crm@db/crm?PASSWORD=redacted"),
        // A percent-encoded key is still the password parameter once decoded.
        ("postgres://crm@db/crm?pass%77ord=hunter2", "postgres://crm@db/crm?pass%77ord=redacted"),
        ("postgres://crm:a@db/crm?password=b", "postgres://crm:redacted@db/crm?password=redacted"),
        // The UNIX-socket form has no host, which `url::Url` refuses to parse.
        (
            "postgres://crm:hunter2@/crm?host=/var/run/postgresql",
            "postgres://crm:redacted@/crm?host=/var/run/postgresql",
        ),
        // A password holding `@` is cut at the last `@` of the authority, as libpq does.
        ("postgres://crm:p@ss@db/crm", "postgres://crm:redacted@db/crm"),
        ("postgres://crm@db/crm?sslmode=require", "postgres://crm@db/crm?sslmode=require"),
        ("postgres://crm@db/crm?passwordless=1", "postgres://crm@db/crm?passwordless=1"),
        ("sqlite:///srv/crm/db.sqlite3", "sqlite:///srv/crm/db.sqlite3"),
    ];
    for (url, expected) in cases {
        assert_eq!(redact_url(url), expected, "redact_url({url:?})");
    }
}

/// Writes `text` as a config file with `mode` and loads it.
fn load_with_mode(text: &str, mode: u32) -> (Result<Config, String>, PathBuf, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (Config::load(&path).map_err(|e| e.to_string()), path, dir)
}

#[test]
fn a_config_holding_a_password_is_refused_when_others_can_read_it() {
    let with_url = |url: &str| MINIMAL.replace("sqlite:///srv/crm/db.sqlite3", url);
    let userinfo = with_url("postgres://crm:hunter2@127.0.0.1:5432/crm");
    let query = with_url("postgres://crm@127.0.0.1:5432/crm?sslmode=disable&password=hunter2");
    for (case, text) in [("user:password@", &userinfo), ("&password=", &query)] {
        let (result, path, _dir) = load_with_mode(text, 0o644);
        let err = result.expect_err(case);
        assert!(err.contains(&path.display().to_string()), "{case}: {err}");
        assert!(err.contains("644"), "{case}: {err}");
        assert!(err.contains(&format!("chmod 640 {}", path.display())), "{case}: {err}");
        assert!(!err.contains("hunter2"), "{case}: {err}");
        let (result, _, _dir) = load_with_mode(text, 0o640);
        assert!(result.is_ok(), "{case}: group-readable is how the package installs it: {result:?}");
    }
    let (result, _, _dir) = load_with_mode(MINIMAL, 0o644);
    assert!(result.is_ok(), "a config without a password may be world-readable: {result:?}");
}

#[test]
fn a_secret_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minio-secret");
    std::fs::write(&path, "s3cr3t\n").unwrap();
    let text =
        MINIMAL.replace("access_key = \"k\"", &format!("access_key = \"k\"\nsecret_key_file = {:?}", path));
    let config = parse(&text).unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = config.minio.secret_key().unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("644") && err.contains("chmod 640"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(config.minio.secret_key().unwrap().expose(), "s3cr3t");
}

/// Issue 24, item 7: `retry_initial_ms = 0` and `retry_max_s = 0` made the scheduler spin
/// (a zero backoff), and a duration past `Instant`'s range panicked the loop at its first
/// `Instant::now() + d`. Each is refused when the config is read, naming the key.
#[test]
fn zero_retries_and_durations_past_the_clock_s_range_are_refused_naming_the_key() {
    // TOML's largest integer: as seconds, far past what `Instant` can add.
    let huge = i64::MAX.to_string();
    let cases = [
        ("[pipeline]", "retry_initial_ms = 0", "pipeline.retry_initial_ms"),
        ("[pipeline]", "retry_max_s = 0", "pipeline.retry_max_s"),
        ("[pipeline]", "retry_initial_ms = 5000\nretry_max_s = 2", "pipeline.retry_initial_ms"),
        ("[pipeline]", &format!("retry_max_s = {huge}"), "pipeline.retry_max_s"),
        ("[pipeline]", &format!("retry_initial_ms = {huge}"), "pipeline.retry_initial_ms"),
        ("[watch]", &format!("settle_ms = {huge}"), "watch.settle_ms"),
        ("[watch]", &format!("reconcile_interval_s = {huge}"), "watch.reconcile_interval_s"),
        ("[watch]", &format!("orphan_after_s = {huge}"), "watch.orphan_after_s"),
        ("[watch]", &format!("owner_wait_s = {huge}"), "watch.owner_wait_s"),
        ("[watch]", &format!("poll_interval_ms = {huge}"), "watch.poll_interval_ms"),
        ("[watch]", "poll_interval_ms = 0", "watch.poll_interval_ms"),
        ("[database]", &format!("connect_timeout_s = {huge}"), "database.connect_timeout_s"),
        ("[database]", &format!("keepalive_idle_s = {huge}"), "database.keepalive_idle_s"),
        ("[service]", &format!("shutdown_timeout_s = {huge}"), "service.shutdown_timeout_s"),
        ("[service]", &format!("stall_timeout_s = {huge}"), "service.stall_timeout_s"),
    ];
    for (table, line, key) in cases {
        let text = if MINIMAL.contains(table) {
            MINIMAL.replace(table, &format!("{table}\n{line}"))
        } else {
            format!("{MINIMAL}\n{table}\n{line}\n")
        };
        let err = parse(&text).expect_err(line);
        assert!(err.contains(key), "{line}: the error must name {key}: {err}");
    }
    // `statement_timeout_ms` and `lock_timeout_ms` are bounded through each other; the largest
    // statement timeout accepted still fits the clock.
    let err = parse(&MINIMAL.replace("[database]", &format!("[database]\nstatement_timeout_ms = {huge}")))
        .unwrap_err();
    assert!(err.contains("database.statement_timeout_ms"), "{err}");
    // The shipped defaults and a day's backoff stay accepted.
    let config = parse(&MINIMAL.replace("[journal]", "[pipeline]\nretry_max_s = 86400\n[journal]")).unwrap();
    assert_eq!(config.pipeline.retry_max_s, 86_400);
}

/// Issue 24, item 5: the transport keys have their defaults, and values that would leave the
/// store without a deadline or with an unusable proxy are refused, naming the key.
#[test]
fn the_transport_keys_have_defaults_and_bounds() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!((config.minio.connect_timeout_s, config.minio.min_upload_bytes_per_s), (10, 131_072));
    assert_eq!((config.minio.ca_file.as_ref(), config.minio.proxy.as_ref()), (None, None));
    for (line, key) in [
        ("connect_timeout_s = 0", "minio.connect_timeout_s"),
        ("min_upload_bytes_per_s = 10", "minio.min_upload_bytes_per_s"),
        ("proxy = \"socks5://127.0.0.1:1080\"", "minio.proxy"),
        ("proxy = \"not a url\"", "minio.proxy"),
    ] {
        let err = parse(&MINIMAL.replace("[minio]", &format!("[minio]\n{line}"))).unwrap_err();
        assert!(err.contains(key), "{line}: {err}");
    }
}

/// Issue 29: the encryption and retention keys are off by default, and each is refused
/// without its companion (or with one it does not use), naming the key.
#[test]
fn the_encryption_and_retention_keys_need_their_companions() {
    let minio = parse(MINIMAL).unwrap().minio;
    assert_eq!((minio.server_side_encryption, minio.kms_key_id), (None, None));
    assert_eq!(
        (minio.retention_mode, minio.retention_days, minio.keep_previous_objects),
        (None, None, false)
    );
    let with = |lines: &str| parse(&MINIMAL.replace("[minio]", &format!("[minio]\n{lines}")));

    let sse = with("server_side_encryption = \"AES256\"\nkeep_previous_objects = true").unwrap().minio;
    assert_eq!(sse.server_side_encryption, Some(ServerSideEncryption::Aes256));
    assert!(sse.keep_previous_objects);
    let kms = with("server_side_encryption = \"aws:kms\"\nkms_key_id = \"confrontas\"").unwrap().minio;
    assert_eq!(
        (kms.server_side_encryption, kms.kms_key_id.as_deref()),
        (Some(ServerSideEncryption::AwsKms), Some("confrontas"))
    );
    let retained = with("retention_mode = \"COMPLIANCE\"\nretention_days = 3650").unwrap().minio;
    assert_eq!(
        (retained.retention_mode, retained.retention_days),
        (Some(RetentionMode::Compliance), Some(3650))
    );

    for (lines, named) in [
        ("server_side_encryption = \"aws:kms\"", "minio.kms_key_id"),
        ("server_side_encryption = \"aws:kms\"\nkms_key_id = \"two words\"", "minio.kms_key_id"),
        ("kms_key_id = \"confrontas\"", "minio.kms_key_id"),
        ("server_side_encryption = \"AES256\"\nkms_key_id = \"confrontas\"", "minio.kms_key_id"),
        ("server_side_encryption = \"aes256\"", "server_side_encryption"),
        ("retention_mode = \"GOVERNANCE\"", "minio.retention_days"),
        ("retention_days = 30", "minio.retention_mode"),
        ("retention_mode = \"COMPLIANCE\"\nretention_days = 0", "minio.retention_days"),
        ("retention_mode = \"COMPLIANCE\"\nretention_days = 365000", "minio.retention_days"),
        ("retention_mode = \"compliance\"\nretention_days = 30", "retention_mode"),
    ] {
        let err = with(lines).expect_err(lines);
        assert!(err.contains(named), "{lines}: the error must name {named}: {err}");
    }
}
