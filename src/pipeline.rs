//! One file's journey, top to bottom: match → claim → hash → upload → verify → record → remove.
//!
//! `Pipeline::process` is the only place that advances a file's state and the only code that
//! deletes a local file. Each step re-checks the world (the file, the row, the object) instead
//! of trusting the journal, and the journal entry is written before the side effect it guards:
//! `hashed` (with the object name) before the upload, `verified` before the row's
//! compare-and-set, `recorded` before the old object and the local file are deleted.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn, Instrument};

use crate::config::{ConditionalWrites, Config};
use crate::db::{RecordOutcome, RecordRequest, RejectRequest, SalesRows, SchemaLimits, VentaRow};
use crate::error::{pause_point, Classify, ErrorClass, Reason};
use crate::hash::{hash_file, FileHash, FileIdentity, ReadError};
use crate::journal::{now_ms, FileState, Journal, JournalEntry, JournalError, StoredHash};
use crate::media_path::{
    remove_file_durably, symlink_metadata_no_follow, MediaRoot, NoFollowError, RelativeMediaPath,
};
use crate::object_name::{ObjectName, ObjectNameInputs, ObjectNameTemplate};
use crate::store::{Capabilities, ObjectInfo, ObjectStore, StoreError, StoreErrorKind, UploadRequest};
use crate::telemetry::{self, Step};
use crate::validation::{Validator, Verdict};

/// What became of one call to `process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Uploaded, verified, recorded, and the local file removed.
    Moved { venta_id: i64, object: String, bytes: u64 },
    /// Nothing to do: the file is gone and nothing is pending for it, or it was given up earlier.
    Nothing,
    /// No row points at the file yet; try again later.
    WaitingForRow,
    /// No row has pointed at the file for `orphan_after_s`; it is kept and reported.
    Orphan,
    /// Another sidecar holds the row's claim.
    Busy,
    /// A transient failure; try again later.
    Retry(Failure),
    /// Given up for this version of the file, which is kept where it is.
    Kept(Failure),
    /// Nothing can work until an operator acts (schema, configuration).
    Fatal(Failure),
}

/// What `--rescan --dry-run` reports for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Venta id and numero, once matched.
    pub venta: Option<(i64, String)>,
    pub object: Option<String>,
    pub size: Option<u64>,
    pub action: PlanAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanAction {
    /// Would upload, verify, record and remove.
    Upload,
    /// The object already holds these bytes: would verify, record and remove.
    RecordExisting,
    /// Would leave the file alone, for this reason.
    Skip(String),
}

/// Why a file did not move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure { reason, message: message.into() }
    }
}

/// Everything a file's journey needs, shared by every in-flight file.
pub struct Pipeline {
    media_root: MediaRoot,
    store: Arc<dyn ObjectStore>,
    db: Arc<dyn SalesRows>,
    journal: Journal,
    template: ObjectNameTemplate,
    url_base: String,
    multipart_threshold: u64,
    part_size: u64,
    limits: SchemaLimits,
    validator: Validator,
    orphan_after_ms: i64,
    store_health: Health,
    db_health: Health,
    /// When this process started: entries given up before it are tried once more.
    started_ms: i64,
    /// Small files go up with `If-None-Match: *` (the server was probed and honours it).
    conditional_put: bool,
    /// The server refuses a PUT whose `x-amz-checksum-sha256` does not match its body (the
    /// probe showed it): a PUT's answer echoing our checksum then verifies the upload.
    checksum_enforced: bool,
    /// See `owners`.
    missing_after_ms: i64,
}

impl Pipeline {
    pub fn new(
        config: &Config,
        store: Arc<dyn ObjectStore>,
        db: Arc<dyn SalesRows>,
        journal: Journal,
        limits: SchemaLimits,
        capabilities: Capabilities,
    ) -> Pipeline {
        let conditional_put =
            capabilities.conditional_put && config.minio.conditional_writes == ConditionalWrites::Auto;
        Pipeline {
            media_root: MediaRoot::resolve(&config.watch.media_root, &config.watch.dir),
            store,
            db,
            journal,
            template: ObjectNameTemplate::parse(&config.minio.object_name)
                .expect("template validated at config load"),
            url_base: format!("{}/{}", config.minio.public_base_url(), config.minio.bucket),
            multipart_threshold: config.minio.multipart_threshold_bytes,
            part_size: config.minio.part_size_bytes,
            limits,
            validator: Validator::new(&config.validation, config.quarantine_dir()),
            orphan_after_ms: (config.watch.orphan_after_s as i64).saturating_mul(1000),
            started_ms: now_ms(),
            conditional_put,
            checksum_enforced: capabilities.checksum_enforced,
            missing_after_ms: (config.watch.missing_after_s as i64).saturating_mul(1000),
            store_health: Health::new("object store", "s3"),
            db_health: Health::new("database", "db"),
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn db(&self) -> &Arc<dyn SalesRows> {
        &self.db
    }

    /// Takes the file at `path` as far as it can go now.
    pub async fn process(&self, path: &RelativeMediaPath) -> Outcome {
        let span = tracing::info_span!("file", path = ?path, venta_id = tracing::field::Empty, object = tracing::field::Empty);
        async {
            let outcome = match self.advance(path).await {
                Ok(outcome) => outcome,
                // Every step's only hard error is the journal: nothing may happen that it has not
                // recorded first, so the file waits.
                Err(e) => {
                    Outcome::Retry(Failure::new(Reason::Journal, format!("cannot write the journal: {e}")))
                }
            };
            match &outcome {
                Outcome::Moved { bytes, .. } => info!(bytes, "moved to object store"),
                Outcome::Retry(f) => debug!(reason = f.reason.as_str(), error = %f.message, "will retry"),
                Outcome::Kept(f) => warn!(reason = f.reason.as_str(), error = %f.message, "file kept"),
                Outcome::Fatal(f) => {
                    tracing::error!(reason = f.reason.as_str(), error = %f.message, "cannot continue")
                }
                _ => {}
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn advance(&self, path: &RelativeMediaPath) -> Result<Outcome, JournalError> {
        let absolute = self.media_root.to_absolute(path);
        let now = now_ms();
        let existing = self.journal.get(path).await?;
        let on_disk = match local_identity(&absolute) {
            Ok(identity) => identity,
            Err(failure @ Failure { reason: Reason::SymlinkedFolder, .. }) => {
                return self.refuse_symlinked_folder(path, existing, failure).await
            }
            Err(failure) => return Ok(Outcome::Retry(failure)),
        };

        if let Some(entry) = &existing {
            if entry.state == FileState::Recorded {
                let span = tracing::Span::current();
                span.record("venta_id", entry.venta_id.unwrap_or_default());
                span.record("object", entry.object_name.as_deref().unwrap_or_default());
                return self.finish_recorded(entry.clone(), RowCheck::ReadAgain).await;
            }
        }
        if let Some(entry) = existing.as_ref().filter(|entry| entry.state == FileState::Refusing) {
            match on_disk {
                Some(identity) if Some(identity) == entry.identity => {
                    // Refused before the last stop: carry the journaled decision out.
                    let reason = match self.validator.check(&absolute, path, identity).await {
                        Verdict::Quarantine(reason) => reason,
                        _ => "refused by validation before a restart".to_owned(),
                    };
                    return self.refuse(entry.clone(), &absolute, reason).await;
                }
                _ => {}
            }
            if on_disk.is_none() {
                // Moved to quarantine before the last stop (its row was cleared before the move).
                let mut entry = entry.clone();
                entry.state = FileState::Rejected;
                self.put(&entry).await?;
                return Ok(Outcome::Nothing);
            }
            // Another file stands at the path now: it starts a new entry below.
        }
        let Some(identity) = on_disk else {
            return self.local_file_gone(existing).await;
        };
        let mut entry = match existing {
            // Same file version, still in progress (or given up): continue from where it is.
            Some(entry) if entry.identity == Some(identity) && entry.state != FileState::Removed => entry,
            // A new file at this path, or one that changed since: start over.
            Some(previous) if !previous.state.is_terminal() && previous.state != FileState::Orphan => {
                let mut entry = JournalEntry::new(path.clone(), previous.first_seen_ms);
                entry.identity = Some(identity);
                entry
            }
            _ => {
                let mut entry = JournalEntry::new(path.clone(), now);
                entry.identity = Some(identity);
                entry
            }
        };
        if entry.state.is_terminal() {
            // Given up during this run: leave it. Given up by an earlier run: every start tries
            // kept files once more, since what kept them (a row, a setting, clamd's limit) may
            // have been fixed in between.
            if entry.updated_ms >= self.started_ms {
                return Ok(Outcome::Nothing);
            }
            debug!(state = entry.state.as_str(), "kept by an earlier run; trying it once more");
            let first_seen = entry.first_seen_ms;
            entry = JournalEntry::new(path.clone(), first_seen);
            entry.identity = Some(identity);
        }

        // A crash (or a lost reply) between the row's compare-and-set and the `recorded` journal
        // write leaves the entry `uploaded` or `verified` while the row already points at our
        // object. The row no longer names this path, so matching by path would never find it:
        // ask for the row by id first.
        if matches!(entry.state, FileState::Uploaded | FileState::Verified) {
            if let (Some(venta_id), Some(object)) = (entry.venta_id, entry.object_name.clone()) {
                match self.db.get(venta_id).await {
                    Ok(Some(row)) if row.minio_object_name.as_deref() == Some(object.as_str()) => {
                        let span = tracing::Span::current();
                        span.record("venta_id", venta_id);
                        span.record("object", object.as_str());
                        info!("the row was recorded before the last stop; finishing the removal");
                        entry.state = FileState::Recorded;
                        self.put(&entry).await?;
                        return self.finish_recorded(entry, RowCheck::JustRecorded).await;
                    }
                    Ok(_) => {}
                    Err(e) => return self.db_refusal(&mut entry, self.db_failure(e)).await,
                }
            }
        }

        // Match: the row whose `confronta` is this path.
        let row = match self.match_row(&mut entry, now).await? {
            Ok(row) => row,
            Err(outcome) => return Ok(outcome),
        };
        tracing::Span::current().record("venta_id", row.id);

        match self.db.try_claim(row.id).await {
            Ok(true) => {}
            Ok(false) => return Ok(Outcome::Busy),
            Err(e) => return self.db_refusal(&mut entry, self.db_failure(e)).await,
        }
        let result = self.with_claim(&mut entry, &absolute, identity, row.clone()).await;
        self.db.release_claim(row.id).await;
        result
    }

    /// Steps that run while this process holds the row's claim.
    async fn with_claim(
        &self,
        entry: &mut JournalEntry,
        absolute: &Path,
        identity: FileIdentity,
        row: VentaRow,
    ) -> Result<Outcome, JournalError> {
        // Hash, unless the journal already holds this version's hash (which it only does for a
        // version that passed validation). A version that passed under other validation
        // settings (a restart after the operator changed them) is validated again first.
        let resumed = entry.hash.is_some() && entry.state >= FileState::Hashed;
        if resumed && entry.validated_with.as_deref() != Some(self.validator.fingerprint()) {
            debug!("validation settings changed since this file was hashed; validating it again");
            if let Some(outcome) = self.validate(entry, absolute, identity, row.id).await? {
                return Ok(outcome);
            }
        }
        let hash = match (&entry.hash, resumed) {
            (Some(stored), true) => FileHash {
                sha256: stored.sha256,
                identity,
                part_digests: stored.part_digests.clone(),
                head: Vec::new(),
            },
            _ => {
                let regular = match symlink_metadata_no_follow(absolute) {
                    Ok(meta) => meta.file_type().is_file(),
                    Err(e @ NoFollowError::SymlinkedFolder { .. }) => {
                        return self
                            .give_up(entry, Failure::new(Reason::SymlinkedFolder, e.to_string()))
                            .await
                    }
                    Err(_) => false,
                };
                if !regular {
                    let message = format!(
                        "{} is not a regular file (a symlink, FIFO or device); it is never followed",
                        absolute.display()
                    );
                    return self.give_up(entry, Failure::new(Reason::NotRegular, message)).await;
                }
                if let Some(outcome) = self.validate(entry, absolute, identity, row.id).await? {
                    return Ok(outcome);
                }
                match self.hash(absolute, identity).await {
                    Ok(hash) => hash,
                    Err(outcome) => return self.fail(entry, outcome).await,
                }
            }
        };
        let content_type = match &entry.hash {
            Some(stored) if !stored.content_type.is_empty() => stored.content_type.clone(),
            _ => sniff_content_type(&hash.head, &entry.path.extension()),
        };

        let (object, url) = match self.name_object(&row, &hash.sha256, &entry.path) {
            Ok(named) => named,
            Err(failure) => return self.give_up(entry, failure).await,
        };
        tracing::Span::current().record("object", object.as_str());

        // `hashed` with the object name is durable before the upload it guards.
        let same_plan =
            entry.object_name.as_deref() == Some(object.as_str()) && entry.venta_id == Some(row.id);
        let validated_with = Some(self.validator.fingerprint().to_owned());
        if !same_plan || entry.state < FileState::Hashed || entry.validated_with != validated_with {
            entry.validated_with = validated_with;
            entry.state = FileState::Hashed;
            entry.venta_id = Some(row.id);
            entry.object_name = Some(object.to_string());
            entry.hash = Some(StoredHash {
                sha256: hash.sha256,
                part_digests: hash.part_digests.clone(),
                content_type: content_type.clone(),
            });
            self.put(entry).await?;
        }
        // The object the row points at now is the one to retire once ours is recorded.
        entry.previous_object = row
            .minio_object_name
            .clone()
            .filter(|previous| !previous.is_empty() && previous != object.as_str());

        // Upload, unless the object already holds exactly these bytes (a resumed upload). Where
        // the server honours `If-None-Match: *`, a single PUT asks it to refuse a taken name in
        // the same request; otherwise the name is stat'ed first. Either way an object with other
        // bytes is never replaced.
        let expected = hash.expected_s3_checksum();
        let single_put = hash.identity.size <= self.multipart_threshold || hash.part_digests.is_empty();
        let conditional = self.conditional_put && single_put;
        // Set when the upload's own answer verified it (see "Verify" below).
        let mut answer_verified = false;
        // What already stands at the name: seen by the stat, or by the stat after a refused conditional PUT.
        let mut present = if conditional {
            None
        } else {
            match self.store.stat(&object).await {
                Ok(info) => info,
                Err(e) => return self.store_failure(entry, e).await,
            }
        };
        if present.is_none() {
            pause_point("before_upload").await;
            let started = Instant::now();
            let request = UploadRequest {
                path: absolute,
                hash: &hash,
                content_type: &content_type,
                multipart_threshold: self.multipart_threshold,
                part_size: self.part_size,
                if_absent: conditional,
            };
            match self.store.upload(&object, request).await {
                Ok(stored) => {
                    self.store_health.up();
                    telemetry::step_time(Step::Upload, started.elapsed());
                    answer_verified = self.checksum_enforced
                        && single_put
                        && stored.checksum_sha256.as_deref() == Some(expected.as_str());
                    entry.upload_ms = Some(started.elapsed().as_millis() as i64);
                    entry.state = FileState::Uploaded;
                    self.put(entry).await?;
                    pause_point("after_upload").await;
                }
                // The server refused to replace an existing object: look at what it holds.
                Err(e) if e.kind == StoreErrorKind::AlreadyExists => {
                    self.store_health.up();
                    match self.store.stat(&object).await {
                        Ok(Some(info)) => present = Some(info),
                        // Deleted again in between: the next attempt uploads it.
                        Ok(None) => {
                            let message = format!("object {object} was taken, then gone again; retrying");
                            let failure = Failure::new(Reason::ObjectConflict, message);
                            return self.settle_outcome(entry, Outcome::Retry(failure)).await;
                        }
                        Err(e) => return self.store_failure(entry, e).await,
                    }
                }
                Err(e) => {
                    if e.kind == StoreErrorKind::ChecksumMismatch || e.kind == StoreErrorKind::LocalFile {
                        // The bytes read for the upload are not the ones hashed: hash again.
                        entry.hash = None;
                        entry.state = FileState::Seen;
                    }
                    return self.store_failure(entry, e).await;
                }
            }
        }
        match present {
            None => {}
            Some(info) if object_matches(&info, &hash, &expected) => {
                debug!("object already holds these bytes; upload skipped");
            }
            Some(info) => {
                let message = format!(
                    "object {object} already exists with other content (size {}, checksum {:?}); it is never overwritten",
                    info.size, info.checksum_sha256
                );
                return self.give_up(entry, Failure::new(Reason::ObjectConflict, message)).await;
            }
        }

        // Verify: the object holds the hashed bytes and the local file is still that file.
        // A single PUT's 200 answer carrying our SHA-256 already proves the first half: the
        // server enforces `x-amz-checksum-sha256` (the start-up probe showed it refusing a
        // wrong one and storing nothing), so it stored exactly the bytes whose SHA-256 we sent,
        // and its echo shows the header reached it. Otherwise (multipart, a server whose answer
        // carries no checksum, an object found already there, a resumed run) the object is
        // stat'ed. The stat after the record (`recheck_object`) still runs either way.
        if !answer_verified {
            let verify_started = Instant::now();
            let verified = self.store.stat(&object).await;
            telemetry::step_time(Step::Verify, verify_started.elapsed());
            match verified {
                Ok(Some(info)) if object_matches(&info, &hash, &expected) => {}
                Ok(Some(info)) => {
                    let message = format!(
                        "object {object} does not match after upload: size {} (expected {}), checksum {:?} (expected {expected})",
                        info.size, hash.identity.size, info.checksum_sha256
                    );
                    return self.fail(entry, Failure::new(Reason::VerifyMismatch, message)).await;
                }
                Ok(None) => {
                    let message = format!("object {object} is missing right after its upload");
                    return self.fail(entry, Failure::new(Reason::VerifyMissing, message)).await;
                }
                Err(e) => return self.store_failure(entry, e).await,
            }
        }
        match local_identity(absolute) {
            Ok(Some(now)) if self.same_file(absolute, &identity, &hash.sha256, now).await => {}
            Ok(_) => {
                entry.hash = None;
                entry.state = FileState::Seen;
                let message = format!("{} changed or vanished after it was hashed", absolute.display());
                return self.fail(entry, Failure::new(Reason::LocalChanged, message)).await;
            }
            Err(failure) => return self.fail(entry, failure).await,
        }
        entry.state = FileState::Verified;
        self.put(entry).await?;

        pause_point("before_record").await;
        // Record: one compare-and-set on the row.
        let sha_hex = hash.sha256.to_hex();
        let request = RecordRequest {
            venta_id: row.id,
            expected_confronta: entry.path.as_str(),
            expected_object_name: row.minio_object_name.as_deref(),
            url: &url,
            object_name: object.as_str(),
            sha256_hex: &sha_hex,
        };
        let record_started = Instant::now();
        let recorded = self.db.record(&request).await;
        telemetry::step_time(Step::Record, record_started.elapsed());
        match recorded {
            Ok(RecordOutcome::Recorded) => self.db_health.up(),
            Ok(RecordOutcome::RowChanged) => return self.row_changed(entry, &row, &object).await,
            Err(e) => {
                let outcome = self.db_failure(e);
                return self.settle_outcome(entry, outcome).await;
            }
        }
        entry.state = FileState::Recorded;
        self.put(entry).await?;
        pause_point("after_record").await;
        // The compare-and-set just matched: the row points at our object, no need to ask again.
        self.finish_recorded(entry.clone(), RowCheck::JustRecorded).await
    }

    /// After the row points at our object: retire the old object, unlink the local file.
    async fn finish_recorded(
        &self,
        mut entry: JournalEntry,
        row_check: RowCheck,
    ) -> Result<Outcome, JournalError> {
        let venta_id = entry.venta_id.unwrap_or_default();
        let object = entry.object_name.clone().unwrap_or_default();

        // After a restart the row is re-read: only a row that still points at our object lets
        // the local copy go.
        let row = match row_check {
            RowCheck::JustRecorded => Ok(None),
            RowCheck::ReadAgain => self.db.get(venta_id).await.map(Some),
        };
        match row {
            Ok(None) => {}
            Ok(Some(Some(row))) if row.minio_object_name.as_deref() == Some(object.as_str()) => {}
            Ok(_) => {
                entry.state = FileState::RowChanged;
                let message =
                    format!("venta {venta_id} no longer points at object {object}; local file kept");
                entry.last_error = Some(message.clone());
                self.put(&entry).await?;
                return Ok(Outcome::Kept(Failure::new(Reason::RowChanged, message)));
            }
            Err(e) => return self.db_refusal(&mut entry, self.db_failure(e)).await,
        }

        // The object must still be there before the local copy goes: `orphans
        // --delete-objects`, or anyone with the keys, may have removed it since it was verified.
        if let Some(outcome) = self.recheck_object(&mut entry).await? {
            return Ok(outcome);
        }

        if let Some(previous) = entry.previous_object.clone() {
            self.retire_previous_object(&previous).await;
        }

        let absolute = self.media_root.to_absolute(&entry.path);
        let bytes = entry.identity.map(|i| i.size).unwrap_or_default();
        pause_point("before_remove").await;
        // Stat again right before the unlink: what matters is the file there now.
        let on_disk = match local_identity(&absolute) {
            Ok(now) => now,
            // Recorded, but the path now crosses a symlink: whatever is behind it stays.
            Err(failure @ Failure { reason: Reason::SymlinkedFolder, .. }) => {
                return Ok(Outcome::Kept(failure))
            }
            Err(failure) => return Ok(Outcome::Retry(failure)),
        };
        let hashed = entry.hash.as_ref().map(|h| h.sha256);
        let same = match (on_disk, entry.identity, hashed) {
            (Some(now), Some(recorded), Some(sha256)) => {
                self.same_file(&absolute, &recorded, &sha256, now).await
            }
            _ => false,
        };
        match on_disk {
            Some(_) if same => {
                if let Err(e) = remove_durably(&absolute) {
                    return Ok(Outcome::Retry(Failure::new(Reason::LocalIo, e)));
                }
                pause_point("after_remove").await;
            }
            Some(_) => {
                // A different file now stands at the path; it is not the one we recorded.
                warn!("a new file replaced the recorded one before removal; it is kept");
            }
            None => {}
        }
        entry.state = FileState::Removed;
        entry.last_error = None;
        entry.error_class = None;
        entry.updated_ms = now_ms();
        self.put(&entry).await?;
        Ok(Outcome::Moved { venta_id, object, bytes })
    }

    /// Whether the file now at `absolute` (`now`) is the version that was hashed. A version that
    /// differs only in its ctime (Django's chmod right after writing, or a rewrite with the
    /// mtime set back) is read again: only the same bytes make it the same file.
    async fn same_file(
        &self,
        absolute: &Path,
        hashed: &FileIdentity,
        sha256: &crate::hash::Sha256Digest,
        now: FileIdentity,
    ) -> bool {
        if now == *hashed {
            return true;
        }
        if !now.same_but_ctime(hashed) {
            return false;
        }
        match self.hash(absolute, now).await {
            Ok(again) => {
                let same = again.sha256 == *sha256;
                if !same {
                    warn!("the file was rewritten in place (same size and mtime, other bytes); it is not the one hashed");
                }
                same
            }
            Err(_) => false,
        }
    }

    /// Deletes the object the corrected venta pointed at before, unless a row still references
    /// it (a duplicated sale, a data fix): asked right before the delete, as `orphans
    /// --delete-objects` does. Never worth holding the local file for; `orphans` reports what
    /// is left behind.
    async fn retire_previous_object(&self, previous: &str) {
        match self.db.object_referenced(previous).await {
            Ok(false) => {}
            Ok(true) => {
                info!(previous_object = %previous, "old object of the corrected venta is still referenced by another row; kept");
                return;
            }
            Err(e) => {
                warn!(previous_object = %previous, error = %e, "cannot ask whether another row references the old object; kept for the orphan report");
                return;
            }
        }
        match self.store.delete(&ObjectName::from_stored(previous.to_owned())).await {
            Ok(()) => info!(previous_object = %previous, "old object of the corrected venta deleted"),
            Err(e) => {
                warn!(previous_object = %previous, error = %e, "could not delete the old object; left for the orphan report")
            }
        }
    }

    /// Checks, after the row points at our object and before the local copy goes, that the
    /// object still holds the hashed bytes; uploads them again from the local file if it is
    /// gone. `None` lets the removal go on; otherwise the outcome to return (the file is kept).
    async fn recheck_object(&self, entry: &mut JournalEntry) -> Result<Option<Outcome>, JournalError> {
        let (Some(stored), Some(identity), Some(object)) =
            (entry.hash.clone(), entry.identity, entry.object_name.clone())
        else {
            return Ok(None);
        };
        let hash = FileHash {
            sha256: stored.sha256,
            identity,
            part_digests: stored.part_digests.clone(),
            head: Vec::new(),
        };
        let expected = hash.expected_s3_checksum();
        let name = ObjectName::from_stored(object.clone());
        match self.store.stat(&name).await {
            Ok(Some(info)) if object_matches(&info, &hash, &expected) => return Ok(None),
            Ok(Some(info)) => {
                let message = format!(
                    "object {object} changed after it was recorded (size {}, checksum {:?}); the local file is kept",
                    info.size, info.checksum_sha256
                );
                return Ok(Some(self.give_up(entry, Failure::new(Reason::ObjectChanged, message)).await?));
            }
            Ok(None) => {}
            Err(e) => return Ok(Some(self.store_failure(entry, e).await?)),
        }
        let absolute = self.media_root.to_absolute(&entry.path);
        match local_identity(&absolute) {
            Ok(Some(now)) if self.same_file(&absolute, &identity, &hash.sha256, now).await => {}
            _ => {
                let message = format!(
                    "object {object} disappeared after it was recorded and the local file is no longer the one hashed"
                );
                tracing::error!("{message}");
                return Ok(Some(self.give_up(entry, Failure::new(Reason::ObjectMissing, message)).await?));
            }
        }
        warn!("object disappeared after it was recorded (deleted by `orphans --delete-objects`?); uploading it again");
        let request = UploadRequest {
            path: &absolute,
            hash: &hash,
            content_type: &stored.content_type,
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
            if_absent: false,
        };
        if let Err(e) = self.store.upload(&name, request).await {
            return Ok(Some(self.store_failure(entry, e).await?));
        }
        match self.store.stat(&name).await {
            Ok(Some(info)) if object_matches(&info, &hash, &expected) => Ok(None),
            Ok(_) => Ok(Some(Outcome::Retry(Failure::new(
                Reason::VerifyMismatch,
                format!("object {object} does not match after uploading it again"),
            )))),
            Err(e) => Ok(Some(self.store_failure(entry, e).await?)),
        }
    }

    /// The local file is gone before it was recorded.
    async fn local_file_gone(&self, existing: Option<JournalEntry>) -> Result<Outcome, JournalError> {
        let Some(mut entry) = existing else {
            return Ok(Outcome::Nothing);
        };
        if entry.state.is_terminal() {
            return Ok(Outcome::Nothing);
        }
        // Another sidecar (or an earlier life of this one) may have finished it.
        if let (Some(venta_id), Some(object)) = (entry.venta_id, entry.object_name.clone()) {
            match self.db.get(venta_id).await {
                Ok(Some(row)) if row.minio_object_name.as_deref() == Some(object.as_str()) => {
                    entry.state = FileState::Removed;
                    self.put(&entry).await?;
                    return Ok(Outcome::Nothing);
                }
                Ok(_) => {}
                // Without the row there is no telling whether it was recorded: ask again
                // later rather than report a loss that may not have happened.
                Err(e) => return self.db_refusal(&mut entry, self.db_failure(e)).await,
            }
        }
        if entry.state < FileState::Hashed || entry.object_name.is_none() {
            // Nothing was sent anywhere for it: Django deleted it, or another sidecar moved it
            // before this one got to it. There is nothing to remember.
            debug!(state = entry.state.as_str(), "local file gone before any work on it");
            self.journal.forget(&entry.path).await?;
            return Ok(Outcome::Nothing);
        }
        let message = format!(
            "local file disappeared after its upload but before it was recorded; object {} left for the orphan report",
            entry.object_name.as_deref().unwrap_or_default()
        );
        warn!(state = entry.state.as_str(), "{message}");
        entry.state = FileState::Rejected;
        entry.error_class = Some(ErrorClass::Rejected);
        entry.last_error = Some(message);
        self.put(&entry).await?;
        Ok(Outcome::Nothing)
    }

    async fn match_row(
        &self,
        entry: &mut JournalEntry,
        now: i64,
    ) -> Result<Result<VentaRow, Outcome>, JournalError> {
        let rows = match self.db.find_by_confronta(entry.path.as_str()).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(self.db_refusal(entry, self.db_failure(e)).await?)),
        };
        self.db_health.up();
        let Owners { rows, stale, unknowable } = self.owners(entry, rows).await?;
        if rows.is_empty() && !unknowable.is_empty() {
            let failure = Failure::new(
                Reason::AmbiguousOwner,
                format!(
                    "venta {} named this path while its file was missing, and this database cannot tell \
                     whether the row was written since; the file is kept for an operator (save the venta \
                     again, or move the file)",
                    unknowable.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                ),
            );
            return Ok(Err(self.give_up(entry, failure).await?));
        }
        let stale_only = rows.is_empty() && !stale.is_empty();
        match rows.len() {
            0 => {
                let orphan = now - entry.first_seen_ms >= self.orphan_after_ms;
                let state = if orphan { FileState::Orphan } else { FileState::WaitingForRow };
                if entry.state != state {
                    if stale_only && !orphan {
                        warn!(
                            stale_ventas = ?stale,
                            "only a row that named this path while its file was missing points at it; waiting for \
                             the row written for this file (a file restored for that venta moves once the venta is saved again)"
                        );
                    } else if orphan {
                        warn!(
                            waited_s = (now - entry.first_seen_ms) / 1000,
                            "orphan: no row points at this file; it is kept, never deleted"
                        );
                    } else {
                        debug!("no row points at this file yet; waiting for Django to commit it");
                    }
                    entry.state = state;
                    self.put(entry).await?;
                }
                Ok(Err(if orphan { Outcome::Orphan } else { Outcome::WaitingForRow }))
            }
            1 => Ok(Ok(rows.into_iter().next().expect("one row"))),
            n => {
                let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
                let failure = Failure::new(
                    Reason::SeveralRows,
                    format!(
                        "{n} rows point at this file (ventas {}); an operator must decide which owns it",
                        ids.join(", ")
                    ),
                );
                Ok(Err(self.give_up(entry, failure).await?))
            }
        }
    }

    /// Splits the rows naming `path` into those that may own the file there now and those
    /// that named it while it was missing and were not written since (see the journal's
    /// `missing_rows`). A row whose version changed is a fresh claim: its mark is dropped.
    ///
    /// A mark counts only once the row had named the missing file for `missing_after_ms` when
    /// this file was first seen: a row inserted a moment before its file (a script, NFS
    /// attribute caching) is still its owner.
    async fn owners(&self, entry: &JournalEntry, rows: Vec<VentaRow>) -> Result<Owners, JournalError> {
        let path = &entry.path;
        let marks = self.journal.missing_marks(path).await?;
        let mut owners =
            Owners { rows: Vec::with_capacity(rows.len()), stale: Vec::new(), unknowable: Vec::new() };
        for row in rows {
            let Some(mark) = marks.iter().find(|mark| {
                mark.venta_id == row.id && entry.first_seen_ms - mark.since_ms >= self.missing_after_ms
            }) else {
                owners.rows.push(row);
                continue;
            };
            match (&row.version, &mark.version) {
                (Some(now), Some(then)) if now == then => owners.stale.push(row.id),
                (Some(_), _) => {
                    self.journal.clear_missing(path, row.id).await?;
                    owners.rows.push(row);
                }
                (None, _) => owners.unknowable.push(row.id),
            }
        }
        Ok(owners)
    }

    /// Runs the validation (type, size, virus scan). `None` lets the file go on; otherwise the
    /// outcome to return. A refused file is moved to quarantine, its row untouched.
    async fn validate(
        &self,
        entry: &mut JournalEntry,
        absolute: &Path,
        identity: FileIdentity,
        venta_id: i64,
    ) -> Result<Option<Outcome>, JournalError> {
        let verdict = self.validator.check(absolute, &entry.path, identity).await;
        match verdict {
            Verdict::Accept { .. } => Ok(None),
            Verdict::Retry(message) => {
                Ok(Some(self.fail(entry, Failure::new(Reason::ValidationPending, message)).await?))
            }
            Verdict::Keep(message) => {
                Ok(Some(self.give_up(entry, Failure::new(Reason::Unscannable, message)).await?))
            }
            Verdict::Quarantine(reason) => {
                entry.venta_id = Some(venta_id);
                Ok(Some(self.refuse(entry.clone(), absolute, reason).await?))
            }
        }
    }

    /// Refuses the file for `reason`: first the row stops naming its path (a compare-and-set
    /// that also writes the reason for Django to show), then the file goes to quarantine. In that
    /// order, no row ever names a free path: while the file is still there Django cannot reuse
    /// the name, and once it is gone the row no longer points at it. The journal says
    /// `refusing` before either happens, so a crash in between resumes here.
    async fn refuse(
        &self,
        mut entry: JournalEntry,
        absolute: &Path,
        reason: String,
    ) -> Result<Outcome, JournalError> {
        if entry.state != FileState::Refusing {
            entry.state = FileState::Refusing;
            entry.last_error = Some(format!("quarantined: {reason}"));
            self.put(&entry).await?;
        }
        if let Some(venta_id) = entry.venta_id {
            let row = match self.db.get(venta_id).await {
                Ok(row) => row,
                Err(e) => {
                    let outcome = self.db_failure(e);
                    return self.settle_outcome(&mut entry, outcome).await;
                }
            };
            if let Some(row) = row.filter(|row| row.confronta.as_deref() == Some(entry.path.as_str())) {
                let request = RejectRequest {
                    venta_id,
                    expected_confronta: entry.path.as_str(),
                    expected_object_name: row.minio_object_name.as_deref(),
                    reason: &reason,
                };
                match self.db.reject(&request).await {
                    Ok(RecordOutcome::Recorded) => {
                        info!(reason = %reason, "refused file: the venta no longer names it, and says why")
                    }
                    Ok(RecordOutcome::RowChanged) => {
                        let failure = Failure::new(
                            Reason::RowMoved,
                            format!(
                                "venta {venta_id} changed while its file was being refused; trying again"
                            ),
                        );
                        return self.settle_outcome(&mut entry, Outcome::Retry(failure)).await;
                    }
                    Err(e) => {
                        let outcome = self.db_failure(e);
                        return self.settle_outcome(&mut entry, outcome).await;
                    }
                }
            }
        }
        let moved = self.validator.quarantine(absolute, &entry.path, &reason);
        let message = match &moved {
            Ok(target) => format!("{reason}; moved to {}", target.display()),
            Err(e) => format!("{reason}; could not move it to quarantine ({e}), so it stays in place"),
        };
        self.give_up(&mut entry, Failure::new(Reason::Quarantined, message)).await
    }

    /// The object name and stored URL for this row and content, refused when the URL or the
    /// name would not fit the table's columns.
    fn name_object(
        &self,
        row: &VentaRow,
        sha256: &crate::hash::Sha256Digest,
        path: &RelativeMediaPath,
    ) -> Result<(ObjectName, String), Failure> {
        let object = self.template.render(&ObjectNameInputs {
            venta_id: row.id,
            numero: &row.numero,
            sha256,
            extension: &path.extension(),
        });
        let url = format!("{}/{}", self.url_base, object);
        let url_len = url.chars().count();
        if let Some(limit) = self.limits.url_max_len.filter(|limit| url_len > *limit) {
            let message =
                format!("object URL is {url_len} characters, longer than the {limit} the URL column holds");
            return Err(Failure::new(Reason::UrlTooLong, message));
        }
        let name_len = object.as_str().chars().count();
        if let Some(limit) = self.limits.object_name_max_len.filter(|limit| name_len > *limit) {
            let message =
                format!("object name is {name_len} characters, longer than the {limit} its column holds");
            return Err(Failure::new(Reason::ObjectNameTooLong, message));
        }
        Ok((object, url))
    }

    /// What `process` would do with `path`, found without writing anything anywhere: no
    /// upload, no row change, no journal entry, no file touched (`--rescan --dry-run`).
    pub async fn plan(&self, path: &RelativeMediaPath) -> Plan {
        let absolute = self.media_root.to_absolute(path);
        let skip =
            |reason: String| Plan { venta: None, object: None, size: None, action: PlanAction::Skip(reason) };
        let identity = match local_identity(&absolute) {
            Ok(Some(identity)) => identity,
            Ok(None) => return skip("the local file does not exist".into()),
            Err(failure) => return skip(failure.message),
        };
        let row = match self.db.find_by_confronta(path.as_str()).await {
            Ok(rows) if rows.len() == 1 => rows.into_iter().next().expect("one row"),
            Ok(rows) if rows.is_empty() => return skip("no row points at this file".into()),
            Ok(rows) => return skip(format!("{} rows point at this file", rows.len())),
            Err(e) => return skip(e.to_string()),
        };
        let hash = match self.hash(&absolute, identity).await {
            Ok(hash) => hash,
            Err(failure) => {
                return Plan {
                    venta: Some((row.id, row.numero)),
                    object: None,
                    size: Some(identity.size),
                    action: PlanAction::Skip(failure.message),
                }
            }
        };
        let venta = Some((row.id, row.numero.clone()));
        let (object, _) = match self.name_object(&row, &hash.sha256, path) {
            Ok(named) => named,
            Err(failure) => {
                return Plan {
                    venta,
                    object: None,
                    size: Some(identity.size),
                    action: PlanAction::Skip(failure.message),
                }
            }
        };
        let action = match self.store.stat(&object).await {
            Ok(Some(info)) if object_matches(&info, &hash, &hash.expected_s3_checksum()) => {
                PlanAction::RecordExisting
            }
            Ok(Some(_)) => PlanAction::Skip(format!("object {object} exists with other content")),
            Ok(None) => PlanAction::Upload,
            Err(e) => PlanAction::Skip(e.to_string()),
        };
        Plan { venta, object: Some(object.to_string()), size: Some(identity.size), action }
    }

    async fn hash(&self, absolute: &Path, identity: FileIdentity) -> Result<FileHash, Failure> {
        let path = absolute.to_owned();
        // The same part size the upload will cut the file into (grown past 10,000 parts).
        let part_size = (identity.size > self.multipart_threshold)
            .then(|| crate::store::part_size_for(identity.size, self.part_size));
        let hashed = tokio::task::spawn_blocking(move || hash_file(&path, part_size))
            .await
            .map_err(|e| Failure::new(Reason::LocalIo, format!("hashing task failed: {e}")))?;
        match hashed {
            Ok(hash) if hash.identity == identity => Ok(hash),
            Ok(_) => Err(Failure::new(
                Reason::LocalChanged,
                format!("{} changed before it was hashed", absolute.display()),
            )),
            Err(ReadError::NotRegular { path }) => {
                Err(Failure::new(Reason::NotRegular, format!("{path} is not a regular file")))
            }
            Err(e @ ReadError::SymlinkedFolder { .. }) => {
                Err(Failure::new(Reason::SymlinkedFolder, e.to_string()))
            }
            Err(e @ ReadError::ChangedWhileReading { .. }) => {
                Err(Failure::new(Reason::LocalChanged, e.to_string()))
            }
            Err(e) => Err(Failure::new(Reason::LocalIo, e.to_string())),
        }
    }

    /// Records a failure in the journal and returns the outcome its reason's class gives.
    async fn fail(&self, entry: &mut JournalEntry, failure: Failure) -> Result<Outcome, JournalError> {
        let outcome = match failure.reason.class() {
            ErrorClass::Rejected => Outcome::Kept(failure),
            ErrorClass::Transient => Outcome::Retry(failure),
            ErrorClass::Fatal => Outcome::Fatal(failure),
        };
        self.settle_outcome(entry, outcome).await
    }

    /// A path that reaches its file through a symlinked folder is kept for good (until the next
    /// start), journaled so that reconcile passes do not log it again.
    async fn refuse_symlinked_folder(
        &self,
        path: &RelativeMediaPath,
        existing: Option<JournalEntry>,
        failure: Failure,
    ) -> Result<Outcome, JournalError> {
        let mut entry = match existing {
            Some(entry) if entry.state.is_terminal() && entry.updated_ms >= self.started_ms => {
                return Ok(Outcome::Nothing)
            }
            Some(entry) => entry,
            None => JournalEntry::new(path.clone(), now_ms()),
        };
        self.give_up(&mut entry, failure).await
    }

    async fn give_up(&self, entry: &mut JournalEntry, failure: Failure) -> Result<Outcome, JournalError> {
        self.settle_outcome(entry, Outcome::Kept(failure)).await
    }

    /// Writes what a failing outcome means for the entry, then returns it.
    async fn settle_outcome(
        &self,
        entry: &mut JournalEntry,
        outcome: Outcome,
    ) -> Result<Outcome, JournalError> {
        let (failure, class) = match &outcome {
            Outcome::Retry(f) => (f, ErrorClass::Transient),
            Outcome::Kept(f) => (f, ErrorClass::Rejected),
            Outcome::Fatal(f) => (f, ErrorClass::Fatal),
            _ => return Ok(outcome),
        };
        entry.attempts += 1;
        entry.error_class = Some(class);
        entry.last_error = Some(format!("{}: {}", failure.reason, failure.message));
        match class {
            ErrorClass::Rejected => entry.state = FileState::Rejected,
            // Keep the progress state: a resumed upload or record picks up from it.
            _ if entry.state <= FileState::Seen => entry.state = FileState::Failed,
            _ => {}
        }
        entry.updated_ms = now_ms();
        self.put(entry).await?;
        Ok(outcome)
    }

    async fn store_failure(
        &self,
        entry: &mut JournalEntry,
        error: StoreError,
    ) -> Result<Outcome, JournalError> {
        if matches!(
            error.kind,
            StoreErrorKind::Unavailable | StoreErrorKind::NoSuchBucket | StoreErrorKind::AccessDenied
        ) {
            self.store_health.down(&error.message);
        }
        let failure = Failure::new(Reason::from(&error), error.message.clone());
        let outcome = match error.class() {
            ErrorClass::Transient => Outcome::Retry(failure),
            ErrorClass::Rejected => Outcome::Kept(failure),
            ErrorClass::Fatal => Outcome::Fatal(failure),
        };
        self.settle_outcome(entry, outcome).await
    }

    fn db_failure(&self, error: crate::db::DbError) -> Outcome {
        if error.is_unavailable() {
            self.db_health.down(&error.message);
        }
        let failure = Failure::new(Reason::from(&error), error.message.clone());
        match error.class() {
            ErrorClass::Transient => Outcome::Retry(failure),
            ErrorClass::Rejected => Outcome::Kept(failure),
            ErrorClass::Fatal => Outcome::Fatal(failure),
        }
    }

    /// Journals a refused database answer (`db_refused`: a permission revoked, 42501) so that it
    /// is logged once per file version and not run again on every reconcile pass. A file
    /// nothing was sent anywhere for is kept (`rejected`; every start tries it once more). One
    /// with an upload under way keeps that progress: it is retried with backoff up to
    /// `retry_max_s`, warned about the first time only. Other outcomes pass through.
    async fn db_refusal(&self, entry: &mut JournalEntry, outcome: Outcome) -> Result<Outcome, JournalError> {
        let Outcome::Kept(failure) = outcome else {
            return Ok(outcome);
        };
        let in_progress = matches!(
            entry.state,
            FileState::Hashed | FileState::Uploaded | FileState::Verified | FileState::Recorded
        );
        if !in_progress {
            return self.give_up(entry, failure).await;
        }
        let said = format!("{}: {}", failure.reason, failure.message);
        if entry.last_error.as_deref() != Some(said.as_str()) {
            warn!(
                state = entry.state.as_str(),
                reason = failure.reason.as_str(),
                error = %failure.message,
                "the database refused a request for this file; it keeps its progress and is tried again with backoff"
            );
        }
        self.settle_outcome(entry, Outcome::Retry(failure)).await
    }

    /// The compare-and-set matched nothing: find out why and decide.
    async fn row_changed(
        &self,
        entry: &mut JournalEntry,
        row: &VentaRow,
        object: &ObjectName,
    ) -> Result<Outcome, JournalError> {
        let now = match self.db.get(row.id).await {
            Ok(now) => now,
            Err(e) => {
                let outcome = self.db_failure(e);
                return self.settle_outcome(entry, outcome).await;
            }
        };
        match now {
            // Someone (another sidecar) recorded this very object: only the removal is left.
            Some(current) if current.minio_object_name.as_deref() == Some(object.as_str()) => {
                entry.state = FileState::Recorded;
                entry.previous_object = None;
                self.put(entry).await?;
                self.finish_recorded(entry.clone(), RowCheck::JustRecorded).await
            }
            // Still our path, only the object changed underneath: match again on the next pass.
            Some(current) if current.confronta.as_deref() == Some(entry.path.as_str()) => {
                let failure = Failure::new(
                    Reason::RowMoved,
                    format!("venta {} changed its object meanwhile; matching again", row.id),
                );
                self.settle_outcome(entry, Outcome::Retry(failure)).await
            }
            _ => {
                let message = format!(
                    "venta {} was deleted or its confronta replaced while the file was in flight; \
                     local file kept, object {object} left for the orphan report",
                    row.id
                );
                entry.state = FileState::RowChanged;
                entry.last_error = Some(message.clone());
                entry.updated_ms = now_ms();
                self.put(entry).await?;
                Ok(Outcome::Kept(Failure::new(Reason::RowChanged, message)))
            }
        }
    }

    async fn put(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        self.journal.put(entry).await
    }
}

/// The rows naming a path, sorted by whether they may own the file there now.
struct Owners {
    /// Rows that may own it.
    rows: Vec<VentaRow>,
    /// Rows that named the path while its file was missing and were not written since.
    stale: Vec<i64>,
    /// Rows that named the path while its file was missing, on a backend that cannot tell
    /// whether they were written since (SQLite).
    unknowable: Vec<i64>,
}

/// Whether `finish_recorded` must read the row again before deleting the local copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowCheck {
    /// This process's compare-and-set just matched.
    JustRecorded,
    /// Resuming from the journal: the row may have changed since.
    ReadAgain,
}

/// Logs one line when a service goes down and one when it comes back, not one per retry.
///
/// A server that is restarting often answers some requests before it can serve them all (a
/// SeaweedFS or MinIO node accepting connections before its volumes or drives are ready), so a
/// failure within `FLAP_WINDOW_MS` of a recovery is the same outage: the gauge follows every
/// change, the log says it at debug level only.
struct Health {
    name: &'static str,
    /// The `service` label of `confronta_up`.
    label: &'static str,
    down: AtomicBool,
    /// Until when (ms since the epoch) a new failure still belongs to the last outage.
    same_outage_until_ms: AtomicI64,
    /// The current outage was not announced (it began inside the window), so neither is its end.
    quiet: AtomicBool,
}

const FLAP_WINDOW_MS: i64 = 30_000;

impl Health {
    fn new(name: &'static str, label: &'static str) -> Self {
        telemetry::service_up(label, true);
        Health {
            name,
            label,
            down: AtomicBool::new(false),
            same_outage_until_ms: AtomicI64::new(0),
            quiet: AtomicBool::new(false),
        }
    }

    fn down(&self, error: &str) {
        if !self.down.swap(true, Ordering::SeqCst) {
            telemetry::service_up(self.label, false);
            if now_ms() < self.same_outage_until_ms.load(Ordering::SeqCst) {
                self.quiet.store(true, Ordering::SeqCst);
                debug!(
                    service = self.name,
                    error, "service failing again right after it recovered; same outage"
                );
            } else {
                warn!(
                    service = self.name,
                    error, "service unavailable; files wait and are retried with backoff"
                );
            }
        }
    }

    fn up(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            telemetry::service_up(self.label, true);
            if self.quiet.swap(false, Ordering::SeqCst) {
                debug!(service = self.name, "service answering again");
            } else {
                info!(service = self.name, "service recovered");
                self.same_outage_until_ms.store(now_ms() + FLAP_WINDOW_MS, Ordering::SeqCst);
            }
        }
    }
}

/// The identity of the file at `path`, `None` when there is none, the failure otherwise.
fn local_identity(path: &Path) -> Result<Option<FileIdentity>, Failure> {
    match FileIdentity::of_path(path) {
        Ok(identity) => Ok(Some(identity)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e @ NoFollowError::SymlinkedFolder { .. }) => {
            Err(Failure::new(Reason::SymlinkedFolder, e.to_string()))
        }
        Err(e) => Err(Failure::new(Reason::LocalIo, e.to_string())),
    }
}

/// Whether the stored object holds exactly the hashed bytes.
fn object_matches(info: &ObjectInfo, hash: &FileHash, expected_checksum: &str) -> bool {
    info.size == hash.identity.size && info.checksum_sha256.as_deref() == Some(expected_checksum)
}

/// Unlinks the file (reached without following a symlink) and fsyncs its folder, so the
/// removal itself survives a power cut.
fn remove_durably(path: &Path) -> Result<(), String> {
    remove_file_durably(path).map_err(|e| e.to_string())
}

/// The Content-Type from the file's first bytes, falling back to its extension.
pub fn sniff_content_type(head: &[u8], extension: &str) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    match extension {
        ".pdf" => "application/pdf",
        ".jpg" | ".jpeg" => "image/jpeg",
        ".png" => "image/png",
        ".tif" | ".tiff" => "image/tiff",
        ".heic" => "image/heic",
        _ => "application/octet-stream",
    }
    .to_owned()
}

/// Backoff for the `attempt`-th retry: doubling from `initial`, capped, with ±25 % jitter so
/// that files failed by one outage do not all retry at the same instant.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let doubled = initial.saturating_mul(1u32 << attempt.min(20));
    let capped = doubled.min(max);
    let jitter = rand::random_range(0.75..1.25);
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_comes_from_magic_bytes_before_the_extension() {
        assert_eq!(sniff_content_type(b"%PDF-1.7\n", ".png"), "application/pdf");
        assert_eq!(sniff_content_type(b"\x89PNG\r\n\x1a\n0000", ".pdf"), "image/png");
        assert_eq!(sniff_content_type(b"plain", ".jpg"), "image/jpeg");
        assert_eq!(sniff_content_type(b"plain", ".exe"), "application/octet-stream");
    }

    #[test]
    fn a_failure_right_after_a_recovery_is_the_same_outage() {
        let health = Health::new("object store", "s3_test");
        health.down("refused");
        assert!(!health.quiet.load(Ordering::SeqCst), "the first failure is announced");
        health.up();
        health.down("volumes not ready");
        assert!(health.quiet.load(Ordering::SeqCst), "a failure inside the window is not a new outage");
        health.up();
        assert!(!health.quiet.load(Ordering::SeqCst) && !health.down.load(Ordering::SeqCst));
        health.same_outage_until_ms.store(0, Ordering::SeqCst);
        health.down("refused again, much later");
        assert!(!health.quiet.load(Ordering::SeqCst), "after the window it is a new outage");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let first = backoff(0, initial, max);
        assert!(first >= Duration::from_millis(750) && first <= Duration::from_millis(1250), "{first:?}");
        let late = backoff(30, initial, max);
        assert!(late <= Duration::from_secs(75) && late >= Duration::from_secs(45), "{late:?}");
    }
}
