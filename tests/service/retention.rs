//! Issue 29, legal retention: confrontas on buckets with versioning, object lock and
//! server-side encryption, on the real S3 test server. Each test makes a bucket of its own
//! (`crate::common::buckets`), since the suite's shared bucket has none of these.

use std::path::Path;
use std::time::Duration;

use crate::common::buckets::{Lock, Setup, TestBucket};
use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);
const PROBE_PREFIX: &str = ".confronta-sync-probe/";

/// A world whose daemon uses `bucket` instead of the shared one.
fn config_on(world: &World, bucket: &TestBucket) -> TestConfig {
    world.config().set("minio.bucket", bucket.name.as_str())
}

/// Starts the daemon, waits until it watches the folder, stops it; returns its log.
async fn start_and_stop(config: &Path) -> String {
    let mut sidecar = Sidecar::start(config, &[], &[]);
    sidecar.wait_watching().await;
    assert_eq!(sidecar.terminate(), Some(0), "the daemon stops cleanly:\n{}", sidecar.log_text());
    sidecar.log_text()
}

/// The object name the test template gives venta `id`'s `bytes`.
fn object_of(world: &World, numero: &str, id: i64, bytes: &[u8]) -> String {
    format!("{}/venta_{numero}_confronta_{id}_{}.pdf", world.prefix, &sha256_hex(bytes)[..12])
}

/// Item 1: each start's probe left its scratch object behind as a retained version (four
/// starts, four objects nobody could delete before the retention ended). Now the first probe
/// writes the bucket's one scratch object and keeps it; later starts reuse the result the
/// journal kept and write nothing, and `check` says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_starts_on_an_object_locked_bucket_leave_at_most_one_scratch_version() {
    let bucket = TestBucket::create(
        "cs-probe",
        Setup { object_lock: Some(Some((Lock::Governance, 1))), ..Setup::default() },
    )
    .await;
    let world = World::new(Backend::Postgres).await;
    let config = config_on(&world, &bucket).write();

    let (code, first_check, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 0, "check passes on the locked bucket: {stderr}");
    for start in 1..=3 {
        let log = start_and_stop(&config).await;
        assert!(log.contains("probe"), "start {start} logs what its probe did:\n{log}");
    }
    let (code, last_check, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 0, "{stderr}");

    let versions = bucket.versions(PROBE_PREFIX).await;
    assert!(versions.len() <= 1, "five starts left {} scratch versions: {versions:?}", versions.len());
    assert!(versions.iter().all(|v| !v.delete_marker), "no delete marker either: {versions:?}");
    assert!(first_check.contains("object lock"), "check names the bucket's object lock:\n{first_check}");
    assert!(
        last_check.contains("probe: nothing written"),
        "the last check says it reused the kept result:\n{last_check}"
    );

    // New encryption settings are tried with PUTs that store nothing; the rest stands.
    let encrypted = config_on(&world, &bucket).set("minio.server_side_encryption", "AES256").write();
    let (code, stdout, stderr) = Sidecar::run(&encrypted, &["check"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("probe: only PUTs the server refused"), "{stdout}");
    let (_, stdout, _) = Sidecar::run(&encrypted, &["check"]);
    assert!(stdout.contains("probe: nothing written"), "{stdout}");
    let versions = bucket.versions(PROBE_PREFIX).await;
    assert!(versions.len() <= 1, "new settings left more scratch versions: {versions:?}");
    world.cleanup().await;
    bucket.cleanup().await;
}

/// Item 2: with `server_side_encryption = "AES256"` every upload, single PUT and multipart,
/// is stored encrypted, though the bucket has no default encryption; `verify` names an
/// object stored without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upload_asks_for_sse_s3_and_verify_names_an_object_stored_without_it() {
    let bucket = TestBucket::create("cs-sse", Setup::default()).await;
    let world = World::new(Backend::Postgres).await;
    let plain = config_on(&world, &bucket).write();

    // One object stored before encryption was asked for.
    let before_id = world.db.insert_venta("PORTA-PLANO", None).await;
    let before_bytes = sample_bytes(290, 30_000);
    let mut sidecar = Sidecar::start(&plain, &[], &[]);
    move_file(&world, before_id, "plano.pdf", &before_bytes).await;
    assert_eq!(sidecar.terminate(), Some(0));

    let encrypted = config_on(&world, &bucket).set("minio.server_side_encryption", "AES256").write();
    assert_eq!(encrypted, plain, "the same file, now asking for encryption");
    let mut sidecar = Sidecar::start(&encrypted, &[], &[]);
    let mut moved = Vec::new();
    for (index, size) in [40_000usize, 12 * 1024 * 1024 + 3].into_iter().enumerate() {
        let numero = format!("PORTA-SSE-{index}");
        let id = world.db.insert_venta(&numero, None).await;
        let bytes = sample_bytes(291 + index as u64, size);
        move_file(&world, id, &format!("cifrado_{index}.pdf"), &bytes).await;
        moved.push(object_of(&world, &numero, id, &bytes));
    }
    assert_eq!(sidecar.terminate(), Some(0));
    for object in &moved {
        let head = bucket.head(object, None).await.unwrap_or_else(|| panic!("{object} stored"));
        assert_eq!(head.encryption.as_deref(), Some("AES256"), "{object} is stored encrypted");
    }

    let (code, stdout, stderr) = Sidecar::run(&encrypted, &["verify"]);
    let unencrypted = object_of(&world, "PORTA-PLANO", before_id, &before_bytes);
    assert_eq!(code, 1, "verify fails on the object stored without encryption:\n{stdout}{stderr}");
    let line = stdout.lines().find(|line| line.contains(&unencrypted)).unwrap_or_default();
    assert!(line.starts_with("MISMATCH") && line.contains("AES256"), "verify names it:\n{stdout}");
    for object in &moved {
        let line = stdout.lines().find(|line| line.contains(object.as_str())).unwrap_or_default();
        assert!(line.starts_with("ok"), "an encrypted object verifies:\n{stdout}");
    }
    let (code, stdout, _) = Sidecar::run(&encrypted, &["verify", "--deep"]);
    let line = stdout.lines().find(|line| line.contains(&unencrypted)).unwrap_or_default();
    assert!(code == 1 && line.starts_with("MISMATCH"), "verify --deep names it too:\n{stdout}");
    world.cleanup().await;
    bucket.cleanup().await;
}

/// Item 2: an answer that does not say the object was stored encrypted is a failure, not a
/// success: the upload fails as `NotEncrypted` (the file is kept, with its reason), the object
/// is deleted again, and no other upload is sent: a server that ignores the header would store
/// every identity document so. MinIO and SeaweedFS both apply the header, so a scripted
/// endpoint plays a server (or a proxy rewriting requests) that ignores it.
#[tokio::test]
async fn an_upload_stored_without_the_encryption_asked_for_is_a_failure() {
    use crate::common::scripted_s3::{Answer, ScriptedS3};
    use confronta_sync::error::{Classify, ErrorClass};
    use confronta_sync::store::{ObjectStore, S3Store, StoreErrorKind, UploadRequest};

    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("a.pdf");
    std::fs::write(&path, sample_bytes(340, 2_000)).unwrap();
    let hash = confronta_sync::hash::hash_file(&path, None).unwrap();
    let echo = hash.sha256.to_base64();
    let server = ScriptedS3::start(move |seen| match seen.method.as_str() {
        "PUT" => Answer::ok(&[("ETag", "\"e\""), ("x-amz-checksum-sha256", echo.as_str())], ""),
        "DELETE" => Answer::Http { status: 204, headers: Vec::new(), body: String::new() },
        _ => Answer::s3_error(404, "NoSuchKey", "The specified key does not exist."),
    })
    .await;
    let env = S3Env { endpoint: server.endpoint(), ..s3_env() };
    let mut config = minio_config(&env, "x/{id}_{sha256}");
    config.server_side_encryption = Some(confronta_sync::config::ServerSideEncryption::Aes256);
    let store = S3Store::new(&config, &confronta_sync::config::Secret::new("s")).unwrap();
    let request = UploadRequest {
        path: &path,
        hash: &hash,
        content_type: "application/pdf",
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        if_absent: true,
    };
    let name = confronta_sync::object_name::ObjectName::from_stored("x/1_abc.pdf");
    let error = store.upload(&name, request).await.expect_err("an unencrypted store is no success");
    assert_eq!(error.kind, StoreErrorKind::NotEncrypted, "{error}");
    assert_eq!(error.class(), ErrorClass::Rejected, "the file is kept: {error}");
    assert!(error.message.contains("AES256") && error.message.contains("deleted again"), "{error}");
    let seen = server.seen();
    assert!(
        seen.iter().any(|request| request.method == "DELETE" && request.target.contains("x/1_abc.pdf")),
        "the object is deleted again: {seen:?}"
    );
    let puts = seen.iter().filter(|request| request.method == "PUT").count();
    let next = UploadRequest {
        path: &path,
        hash: &hash,
        content_type: "application/pdf",
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        if_absent: true,
    };
    let other = confronta_sync::object_name::ObjectName::from_stored("x/2_abc.pdf");
    let error = store.upload(&other, next).await.expect_err("no other upload is sent");
    assert_eq!(error.kind, StoreErrorKind::NotEncrypted, "{error}");
    let puts_after = server.seen().iter().filter(|request| request.method == "PUT").count();
    assert_eq!(puts_after, puts, "nothing more was sent to the server");
}

/// Item 2: `check` reports the bucket's default encryption, and whether it has any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_bucket_default_encryption() {
    let world = World::new(Backend::Postgres).await;
    for (label, default_encryption, expected) in
        [("cs-enc", true, "default encryption AES256"), ("cs-noenc", false, "no default encryption")]
    {
        let bucket = TestBucket::create(label, Setup { default_encryption, ..Setup::default() }).await;
        let (code, stdout, stderr) = Sidecar::run(&config_on(&world, &bucket).write(), &["check"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(expected), "check on {}: {expected:?} expected in:\n{stdout}", bucket.name);
        bucket.cleanup().await;
    }
    world.cleanup().await;
}

/// Item 2: SSE-KMS on a server without a KMS (SeaweedFS answers 500 InternalError, MinIO 501
/// NotImplemented: both "try again" by their status) is refused at once by `check` and at
/// start-up, naming the setting and what is missing, rather than every upload retried for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_kms_without_a_kms_is_a_clear_error_at_start() {
    let world = World::new(Backend::Postgres).await;
    let config = world
        .config()
        .set("minio.server_side_encryption", "aws:kms")
        .set("minio.kms_key_id", "confrontas")
        .write();
    let (code, stdout, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 4, "check refuses SSE-KMS without a KMS:\n{stdout}{stderr}");
    for named in ["aws:kms", "confrontas", "KMS", &s3_env().bucket] {
        assert!(stderr.contains(named), "the error names {named:?}:\n{stderr}");
    }
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    assert_eq!(sidecar.wait_exit(WAIT), Some(4), "the daemon refuses to start:\n{}", sidecar.log_text());
    assert!(sidecar.log_text().contains("aws:kms"), "{}", sidecar.log_text());
    world.cleanup().await;
}

/// Item 3: `retention_mode` and `retention_days` set each object's retention at upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_upload_carries_the_configured_retention() {
    let bucket = TestBucket::create("cs-ret", Setup { object_lock: Some(None), ..Setup::default() }).await;
    let world = World::new(Backend::Postgres).await;
    let config = config_on(&world, &bucket)
        .set("minio.retention_mode", "GOVERNANCE")
        .set("minio.retention_days", 2)
        .write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    let mut moved = Vec::new();
    for (index, size) in [25_000usize, 12 * 1024 * 1024 + 7].into_iter().enumerate() {
        let numero = format!("PORTA-RET-{index}");
        let id = world.db.insert_venta(&numero, None).await;
        let bytes = sample_bytes(300 + index as u64, size);
        move_file(&world, id, &format!("retenido_{index}.pdf"), &bytes).await;
        moved.push(object_of(&world, &numero, id, &bytes));
    }
    assert_eq!(sidecar.terminate(), Some(0));
    let today = date_in(0);
    for object in &moved {
        let head = bucket.head(object, None).await.unwrap_or_else(|| panic!("{object} stored"));
        assert_eq!(head.lock_mode.as_deref(), Some("GOVERNANCE"), "{object}: {head:?}");
        let until = head.retain_until.clone().unwrap_or_default();
        // Two days from the upload: the date is today's plus two (or plus one, past midnight).
        assert!(
            until.starts_with(&date_in(2)) || until.starts_with(&date_in(1)),
            "{object} retained until {until} (today {today})"
        );
    }
    world.cleanup().await;
    bucket.cleanup().await;
}

/// Item 3: `check` (and start-up) refuse a retention on a bucket without object lock, naming
/// it, before the probe writes anything there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_a_retention_on_a_bucket_without_object_lock() {
    let bucket = TestBucket::create("cs-nolock", Setup { versioning: true, ..Setup::default() }).await;
    let world = World::new(Backend::Postgres).await;
    let config = config_on(&world, &bucket)
        .set("minio.retention_mode", "COMPLIANCE")
        .set("minio.retention_days", 30)
        .write();
    let (code, stdout, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 4, "check refuses:\n{stdout}{stderr}");
    assert!(
        stderr.contains(&bucket.name) && stderr.contains("object lock") && stderr.contains("retention_mode"),
        "the error names the bucket, object lock and the key:\n{stderr}"
    );
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    assert_eq!(sidecar.wait_exit(WAIT), Some(4), "{}", sidecar.log_text());
    let scratch = bucket.versions(PROBE_PREFIX).await;
    assert!(scratch.is_empty(), "refused before the probe wrote anything: {scratch:?}");
    world.cleanup().await;
    bucket.cleanup().await;
}

/// Item 2: an object found at the file's name already holding its bytes but stored
/// unencrypted (a plain run's upload that a crash left unrecorded, then encryption was turned
/// on) is not taken as the upload: the file goes up again, encrypted, over the same bytes.
/// Taking it would record a document the operator asked to be encrypted, stored in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_left_unencrypted_is_not_taken_as_the_upload_once_encryption_is_asked() {
    use confronta_sync::store::{ObjectStore, S3Store, UploadRequest};

    let bucket = TestBucket::create("cs-left", Setup::default()).await;
    let world = World::new(Backend::Postgres).await;
    let id = world.db.insert_venta("PORTA-DEJADO", None).await;
    let bytes = sample_bytes(350, 30_000);
    let object = object_of(&world, "PORTA-DEJADO", id, &bytes);

    // The plain upload a crash left behind: our checksum on it, no encryption.
    let temp = tempfile::tempdir().unwrap();
    let left = temp.path().join("dejado.pdf");
    std::fs::write(&left, &bytes).unwrap();
    let hash = confronta_sync::hash::hash_file(&left, None).unwrap();
    let env = s3_env();
    let mut plain = minio_config(&env, "x/{id}");
    plain.bucket = bucket.name.clone();
    let store = S3Store::new(&plain, &confronta_sync::config::Secret::new(env.secret_key.as_str())).unwrap();
    let request = UploadRequest {
        path: &left,
        hash: &hash,
        content_type: "application/pdf",
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        if_absent: false,
    };
    store.upload(&confronta_sync::object_name::ObjectName::from_stored(&object), request).await.unwrap();
    let head = bucket.head(&object, None).await.expect("the left object is there");
    assert_eq!(head.encryption, None, "the left object is stored in clear");

    let encrypted = config_on(&world, &bucket).set("minio.server_side_encryption", "AES256").write();
    let mut sidecar = Sidecar::start(&encrypted, &[], &[]);
    move_file(&world, id, "dejado.pdf", &bytes).await;
    assert_eq!(sidecar.terminate(), Some(0), "{}", sidecar.log_text());
    let head = bucket.head(&object, None).await.expect("the object is there");
    assert_eq!(
        head.encryption.as_deref(),
        Some("AES256"),
        "the recorded object is the encrypted upload, not the one left in clear:\n{}",
        sidecar.log_text()
    );
    let (code, stdout, stderr) = Sidecar::run(&encrypted, &["verify"]);
    assert_eq!(code, 0, "verify finds the recorded object encrypted:\n{stdout}{stderr}");
    world.cleanup().await;
    bucket.cleanup().await;
}

/// Item 4: on a versioned bucket a correction's delete of the previous object leaves it as a
/// version (a delete marker hides it), so the first document survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_on_a_versioned_bucket_keeps_the_first_document_as_a_version() {
    let bucket = TestBucket::create("cs-ver", Setup { versioning: true, ..Setup::default() }).await;
    let world = World::new(Backend::Postgres).await;
    let config = config_on(&world, &bucket).write();
    let id = world.db.insert_venta("PORTA-CORR", None).await;
    let (first, second) = (sample_bytes(310, 20_000), sample_bytes(311, 21_000));
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    move_file(&world, id, "primera.pdf", &first).await;
    move_file(&world, id, "segunda.pdf", &second).await;
    let old = object_of(&world, "PORTA-CORR", id, &first);
    eventually("the previous object deleted", WAIT, || async {
        sidecar.log_text().contains("old object of the corrected venta").then_some(())
    })
    .await;
    assert_eq!(sidecar.terminate(), Some(0));
    assert!(bucket.head(&old, None).await.is_none(), "the previous object is no longer current");
    let versions = bucket.versions(&old).await;
    assert!(
        versions.iter().any(|v| !v.delete_marker) && versions.iter().any(|v| v.delete_marker && v.latest),
        "the first document stays as a version behind a delete marker: {versions:?}"
    );
    assert!(sidecar.log_text().contains("delete marker"), "the log says what the delete did");
    world.cleanup().await;
    bucket.cleanup().await;
}

/// Item 4: `keep_previous_objects = true` never deletes a corrected venta's previous object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_previous_objects_never_deletes_the_previous_object() {
    let bucket = TestBucket::create("cs-keep", Setup::default()).await;
    let world = World::new(Backend::Postgres).await;
    let config = config_on(&world, &bucket).set("minio.keep_previous_objects", true).write();
    let id = world.db.insert_venta("PORTA-KEEP", None).await;
    let (first, second) = (sample_bytes(320, 20_000), sample_bytes(321, 21_000));
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    move_file(&world, id, "primera.pdf", &first).await;
    move_file(&world, id, "segunda.pdf", &second).await;
    eventually("the previous object kept", WAIT, || async {
        sidecar.log_text().contains("keep_previous_objects").then_some(())
    })
    .await;
    assert_eq!(sidecar.terminate(), Some(0));
    let old = object_of(&world, "PORTA-KEEP", id, &first);
    assert!(bucket.head(&old, None).await.is_some(), "the previous object {old} is still there");
    assert_eq!(bucket.versions(&old).await.len(), 1, "and was never deleted");
    world.cleanup().await;
    bucket.cleanup().await;
}

/// Item 4: `orphans --delete-objects` on a versioned (here object-locked) bucket says that it
/// left delete markers and that the versions stay, and the run succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_on_a_locked_bucket_says_it_left_delete_markers() {
    let bucket = TestBucket::create(
        "cs-orph",
        Setup { object_lock: Some(Some((Lock::Governance, 1))), ..Setup::default() },
    )
    .await;
    let world = World::new(Backend::Postgres).await;
    let config = config_on(&world, &bucket).write();
    let orphan = format!("{}/venta_PORTA-X_confronta_999_0123456789ab.pdf", world.prefix);
    bucket.put(&orphan, b"%PDF-1.7 nobody's").await;
    let (code, stdout, stderr) =
        Sidecar::run(&config, &["orphans", "--delete-objects", "--older-than", "0s"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let line = stdout.lines().find(|line| line.contains(&orphan)).unwrap_or_default();
    assert!(line.contains("delete marker"), "the object's line says a delete marker hides it:\n{stdout}");
    assert!(stdout.contains("delete marker"), "the summary counts them:\n{stdout}");
    let versions = bucket.versions(&orphan).await;
    assert!(versions.iter().any(|v| !v.delete_marker), "its retained version stays: {versions:?}");
    world.cleanup().await;
    bucket.cleanup().await;
}

/// The end-to-end case: a bucket set up as the guide says (versioning, object lock
/// with a default retention in COMPLIANCE mode, SSE-S3 by default) and a daemon asking for
/// SSE-S3 itself. Files (one in parts) and a correction move; every version stored is
/// encrypted and retained; the first document survives as a version; `verify` passes; five
/// restarts (and a `check`) leave at most one scratch version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_retention_end_to_end() {
    let setup =
        Setup { versioning: true, object_lock: Some(Some((Lock::Compliance, 1))), default_encryption: true };
    let bucket = TestBucket::create("cs-legal", setup).await;
    let world = World::new(Backend::Postgres).await;
    let config = config_on(&world, &bucket).set("minio.server_side_encryption", "AES256").write();

    let mut sidecar = Sidecar::start(&config, &[], &[]);
    let corrected = world.db.insert_venta("PORTA-LEGAL-1", None).await;
    let other = world.db.insert_venta("PORTA-LEGAL-2", None).await;
    let (first, second, large) =
        (sample_bytes(330, 30_000), sample_bytes(331, 31_000), sample_bytes(332, 12 * 1024 * 1024 + 11));
    move_file(&world, corrected, "consentimiento.pdf", &first).await;
    move_file(&world, other, "grande.pdf", &large).await;
    move_file(&world, corrected, "consentimiento_corregido.pdf", &second).await;
    let first_object = object_of(&world, "PORTA-LEGAL-1", corrected, &first);
    eventually("the corrected venta's first object retired", WAIT, || async {
        sidecar.log_text().contains("delete marker hides it").then_some(())
    })
    .await;
    assert_eq!(sidecar.terminate(), Some(0), "{}", sidecar.log_text());

    let versions = bucket.versions(&format!("{}/", world.prefix)).await;
    let stored: Vec<_> = versions.iter().filter(|v| !v.delete_marker).collect();
    assert_eq!(stored.len(), 3, "three documents stored, none overwritten: {versions:?}");
    for version in &stored {
        let head =
            bucket.head(&version.key, Some(&version.version_id)).await.expect("the version is readable");
        assert_eq!(head.encryption.as_deref(), Some("AES256"), "{} is encrypted: {head:?}", version.key);
        assert_eq!(head.lock_mode.as_deref(), Some("COMPLIANCE"), "{} is retained: {head:?}", version.key);
        assert!(head.retain_until.is_some(), "{} has a retain-until date: {head:?}", version.key);
    }
    let first_versions: Vec<_> = versions.iter().filter(|v| v.key == first_object).collect();
    assert!(
        first_versions.iter().any(|v| !v.delete_marker)
            && first_versions.iter().any(|v| v.delete_marker && v.latest),
        "the first document survives as a version behind a delete marker: {first_versions:?}"
    );

    let (code, stdout, stderr) = Sidecar::run(&config, &["verify"]);
    assert_eq!(code, 0, "every recorded object verifies, encryption included:\n{stdout}{stderr}");
    for start in 2..=5 {
        let log = start_and_stop(&config).await;
        assert!(log.contains("start-up probe: nothing written"), "start {start} writes nothing:\n{log}");
    }
    let (code, stdout, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("versioning enabled; object lock with a default retention of 1 day in COMPLIANCE mode; default encryption AES256"),
        "check describes the bucket:\n{stdout}"
    );
    let scratch = bucket.versions(PROBE_PREFIX).await;
    assert!(
        scratch.len() <= 1,
        "five starts and a check left {} scratch versions: {scratch:?}",
        scratch.len()
    );
    world.cleanup().await;
    // Retained in COMPLIANCE mode: the versions stay until tomorrow; the bucket with them.
    bucket.cleanup().await;
}

/// The UTC date `days` from now, `YYYY-MM-DD`.
fn date_in(days: u64) -> String {
    let then = std::time::SystemTime::now() + Duration::from_secs(days * 86_400);
    humantime::format_rfc3339_seconds(then).to_string()[..10].to_owned()
}
