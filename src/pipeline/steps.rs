//! The forward steps of a file's journey, `seen` to `recorded`: claim and hash, upload, verify,
//! record. Each takes the stage it runs from (the `Work` once claimed) and returns the next
//! one, or the run's end, for the driver to carry out; none sets the entry's state.

use std::path::Path;
use std::time::Instant;

use tracing::{debug, warn};

use super::{
    fail, give_up, local_identity, object_matches, sniff_content_type, Failure, Outcome, Pipeline, RowCheck,
    Run, Stage, Step, Work,
};
use crate::db::{RecordOutcome, RecordRequest, VentaRow};
use crate::error::{pause_point, Reason};
use crate::hash::{hash_file_durably, FileHash, FileIdentity, ReadError, Sha256Digest};
use crate::journal::{FileState, JournalError, StoredHash, UploadPlan};
use crate::media_path::{symlink_metadata_no_follow, NoFollowError, RelativeMediaPath};
use crate::object_name::{ObjectName, ObjectNameInputs};
use crate::store::{StoreErrorKind, UploadRequest};
use crate::telemetry::{self, Step as Timed};

impl Pipeline {
    /// `seen`, `waiting_for_row`, `failed`, `orphan` (and a resumed entry once its row was not
    /// found recorded): match the row and claim it, then hash the file (or reuse the journaled
    /// hash) and name the object.
    pub(super) async fn prepare(&self, run: &mut Run, identity: FileIdentity) -> Result<Step, JournalError> {
        let row = match self.claim(run, identity).await? {
            Ok(row) => row,
            Err(step) => return Ok(step),
        };
        let hash = match self.hash_for_run(run, identity, row.id).await {
            Ok(hash) => hash,
            Err(step) => return Ok(step),
        };
        Ok(self.name(run, row, identity, hash))
    }

    /// `hashed`, `verified` at the start of a run. A crash (or a lost reply)
    /// between the row's compare-and-set and the `recorded` journal write leaves the entry
    /// `verified` while the row already points at our object. The row no longer
    /// names this path, so matching by path would never find it: ask for the row by id first.
    pub(super) async fn resume(&self, run: &mut Run, identity: FileIdentity) -> Result<Step, JournalError> {
        if run.entry.state() == FileState::Verified {
            if let Some(step) = self.recorded_before_stop(run).await {
                return Ok(step);
            }
        }
        self.prepare(run, identity).await
    }

    /// The row whose `confronta` is this path, claimed for this run. The lookup claims every
    /// row it finds in the same round trip; the claims on rows the match does not keep are
    /// released at once (several rows, stale ones: the rare cases).
    async fn claim(
        &self,
        run: &mut Run,
        identity: FileIdentity,
    ) -> Result<Result<VentaRow, Step>, JournalError> {
        let found = match self.db.find_and_claim(run.entry.path().as_str()).await {
            Ok(found) => found,
            Err(e) => return Ok(Err(self.db_refusal(&run.entry, e))),
        };
        run.claimed = found.iter().filter(|f| f.claimed).map(|f| f.row.id).collect();
        let claimed_here = |id: i64| found.iter().any(|f| f.row.id == id && f.claimed);
        let rows: Vec<VentaRow> = found.iter().map(|f| f.row.clone()).collect();
        let matched = self.match_row(run, identity, rows).await;
        let kept = match &matched {
            Ok(Ok(row)) if claimed_here(row.id) => Some(row.id),
            _ => None,
        };
        for venta_id in std::mem::take(&mut run.claimed) {
            if Some(venta_id) == kept {
                run.claimed.push(venta_id);
            } else {
                self.db.release_claim(venta_id).await;
            }
        }
        match matched? {
            Ok(row) => {
                tracing::Span::current().record("venta_id", row.id);
                if kept.is_some() {
                    Ok(Ok(row))
                } else {
                    Ok(Err(Step::Stop(Outcome::Busy)))
                }
            }
            Err(step) => Ok(Err(step)),
        }
    }

    /// The file's hash. An entry in `hashed` or later holds it for this version (only a
    /// version that passed validation is hashed): it is reused, after validating the file again
    /// if the validation settings changed since (a restart after the operator changed them).
    /// Otherwise the file is validated and read.
    async fn hash_for_run(
        &self,
        run: &mut Run,
        identity: FileIdentity,
        venta_id: i64,
    ) -> Result<FileHash, Step> {
        let journaled = match (run.entry.state(), run.entry.hash()) {
            (FileState::Hashed | FileState::Verified, Some(stored)) => Some(stored.clone()),
            _ => None,
        };
        if let Some(stored) = journaled {
            if run.entry.validated_with().as_deref() != Some(run.validator.fingerprint()) {
                debug!("validation settings changed since this file was hashed; validating it again");
                if let Some(step) = self.validate(run, identity, Some(venta_id)).await {
                    return Err(step);
                }
            }
            return Ok(FileHash {
                sha256: stored.sha256,
                identity,
                part_digests: stored.part_digests,
                head: Vec::new(),
            });
        }
        let regular = match symlink_metadata_no_follow(&run.absolute) {
            Ok(meta) => meta.file_type().is_file(),
            Err(e @ NoFollowError::SymlinkedFolder { .. }) => {
                return Err(give_up(Failure::new(Reason::SymlinkedFolder, e.to_string())))
            }
            Err(_) => false,
        };
        if !regular {
            let message = format!(
                "{} is not a regular file (a symlink, FIFO or device); it is never followed",
                run.absolute.display()
            );
            return Err(give_up(Failure::new(Reason::NotRegular, message)));
        }
        if let Some(step) = self.validate(run, identity, Some(venta_id)).await {
            return Err(step);
        }
        self.hash(&run.absolute, identity).await.map_err(fail)
    }

    /// Names the object for this row and content. `hashed` with the object name is journaled
    /// (durable before the upload it guards) unless the journal already says exactly that.
    fn name(&self, run: &mut Run, row: VentaRow, identity: FileIdentity, hash: FileHash) -> Step {
        let entry = &mut run.entry;
        let content_type = match entry.hash() {
            Some(stored) if !stored.content_type.is_empty() => stored.content_type.clone(),
            _ => sniff_content_type(&hash.head, &entry.path().extension()),
        };
        let (object, url) = match self.name_object(&row, &hash.sha256, entry.path()) {
            Ok(named) => named,
            Err(failure) => return give_up(failure),
        };
        tracing::Span::current().record("object", object.as_str());
        let plan = UploadPlan {
            venta_id: row.id,
            row_assigned: row.assigned.clone(),
            object_name: object.to_string(),
            hash: StoredHash {
                sha256: hash.sha256,
                part_digests: hash.part_digests.clone(),
                content_type: content_type.clone(),
            },
            validated_with: run.validator.fingerprint().to_owned(),
        };
        let journaled = entry.has_plan(&plan);
        if !journaled {
            entry.plan_upload(plan);
        }
        let claimed = Stage::Claimed(Box::new(Work {
            row,
            identity,
            hash,
            content_type,
            object,
            url,
            answer_verified_at: None,
        }));
        if journaled {
            Step::Continue(claimed)
        } else {
            Step::To(claimed)
        }
    }

    /// Uploads the file, unless the object already holds exactly these bytes (a resumed
    /// upload). Where the server honours `If-None-Match: *`, a single PUT asks it to refuse a
    /// taken name in the same request; otherwise the name is stat'ed first. Either way an
    /// object with other bytes is never replaced.
    pub(super) async fn upload(&self, run: &mut Run, mut work: Box<Work>) -> Result<Step, JournalError> {
        let Run { entry, absolute, .. } = run;
        // The object the row points at now is the one to retire once ours is recorded.
        entry.note_previous_object(
            work.row
                .minio_object_name
                .clone()
                .filter(|previous| !previous.is_empty() && previous != work.object.as_str()),
        );
        let expected = work.hash.expected_s3_checksum();
        let single_put =
            work.hash.identity.size <= self.multipart_threshold || work.hash.part_digests.is_empty();
        let conditional = self.conditional_put && single_put;
        // An object found holding these bytes but stored without the encryption asked for
        // (a plain run's upload that a crash left unrecorded) is not our upload: the same bytes
        // go up again, encrypted, over it (unconditionally, since the name is taken).
        let mut replacing_clear_copy = false;
        let info = loop {
            // What already stands at the name: seen by the stat, or by the stat after a refused conditional PUT.
            let present = if conditional || replacing_clear_copy {
                None
            } else {
                match self.store.stat(&work.object).await {
                    Ok(info) => info,
                    Err(e) => return Ok(Step::Settle(self.store_failure(e))),
                }
            };
            let found = match present {
                Some(info) => info,
                None => {
                    pause_point("before_upload").await;
                    let started = Instant::now();
                    let request = UploadRequest {
                        path: absolute,
                        hash: &work.hash,
                        content_type: &work.content_type,
                        multipart_threshold: self.multipart_threshold,
                        part_size: self.part_size,
                        if_absent: conditional && !replacing_clear_copy,
                    };
                    match self.store.upload(&work.object, request).await {
                        Ok(stored) => {
                            self.store_health.up();
                            telemetry::step_time(Timed::Upload, started.elapsed());
                            // An answer must carry what the probe's answers carried: our
                            // checksum where the server echoes it, nothing where it does not
                            // (garage). Anything else is stat'ed: see `verify`.
                            let answer_as_probed = match stored.checksum_sha256.as_deref() {
                                Some(echo) => echo == expected,
                                None => !self.checksum_answered,
                            };
                            let verified = self.checksum_enforced && single_put && answer_as_probed;
                            work.answer_verified_at = verified.then(Instant::now);
                            entry.note_upload_time(started.elapsed().as_millis() as i64);
                            // Nothing is journaled here: a crash before `verified` resumes from
                            // `hashed`, whose first step finds the object holding these bytes.
                            pause_point("after_upload").await;
                            return Ok(Step::Continue(Stage::Stored(work)));
                        }
                        // The server refused to replace an existing object: look at what it holds.
                        Err(e) if e.kind == StoreErrorKind::AlreadyExists => {
                            self.store_health.up();
                            match self.store.stat(&work.object).await {
                                Ok(Some(info)) => info,
                                // Deleted again in between: the next attempt uploads it.
                                Ok(None) => {
                                    let message = format!(
                                        "object {} was taken, then gone again; retrying",
                                        work.object
                                    );
                                    return Ok(Step::Settle(Outcome::Retry(Failure::new(
                                        Reason::ObjectConflict,
                                        message,
                                    ))));
                                }
                                Err(e) => return Ok(Step::Settle(self.store_failure(e))),
                            }
                        }
                        // The bytes read for the upload are not the ones hashed: hash again.
                        Err(e)
                            if matches!(
                                e.kind,
                                StoreErrorKind::ChecksumMismatch | StoreErrorKind::LocalFile
                            ) =>
                        {
                            return Ok(Step::Rehash(self.store_failure(e)))
                        }
                        Err(e) => return Ok(Step::Settle(self.store_failure(e))),
                    }
                }
            };
            let info = found;
            if !replacing_clear_copy && object_matches(&info, &work.hash, &expected) {
                if let Some(problem) = self.store.policy().unencrypted(&info) {
                    warn!(object = %work.object, "the object holds these bytes but is {problem}; uploading them again, encrypted");
                    replacing_clear_copy = true;
                    continue;
                }
            }
            break info;
        };
        if !object_matches(&info, &work.hash, &expected) {
            let message = format!(
                "object {} already exists with other content (size {}, checksum {:?}); it is never overwritten",
                work.object, info.size, info.checksum_sha256
            );
            return Ok(give_up(Failure::new(Reason::ObjectConflict, message)));
        }
        debug!("object already holds these bytes; upload skipped");
        Ok(Step::Continue(Stage::Stored(work)))
    }

    /// Verify: the object holds the hashed bytes and the local file is still that file.
    /// A single PUT's 200 answer already proves the first half: the server enforces
    /// `x-amz-checksum-sha256` (the start-up probe showed it refusing a wrong one and storing
    /// nothing), and the header is among the request's signed headers, so a server that
    /// accepted the signature read it: it stored exactly the bytes whose SHA-256 we sent.
    /// The answer must still look like the probe's: where those echoed the checksum (MinIO,
    /// SeaweedFS), one without it (a proxy's maintenance page, a misrouted request) or with
    /// another is not believed; garage echoes nothing. Otherwise (multipart, an object found
    /// already there, a resumed run, an answer unlike the probe's) the object is stat'ed, and
    /// then stat'ed once more after the record (`finish_recorded`).
    pub(super) async fn verify(&self, run: &mut Run, work: Box<Work>) -> Result<Step, JournalError> {
        let object = &work.object;
        if work.answer_verified_at.is_none() {
            let expected = work.hash.expected_s3_checksum();
            let verify_started = Instant::now();
            let verified = self.store.stat(object).await;
            telemetry::step_time(Timed::Verify, verify_started.elapsed());
            match verified {
                Ok(Some(info)) if object_matches(&info, &work.hash, &expected) => {
                    if let Some(problem) = self.store.policy().unencrypted(&info) {
                        let message = format!("object {object} holds these bytes but is {problem}");
                        return Ok(fail(Failure::new(Reason::VerifyMismatch, message)));
                    }
                }
                Ok(Some(info)) => {
                    let message = format!(
                        "object {object} does not match after upload: size {} (expected {}), checksum {:?} (expected {expected})",
                        info.size, work.hash.identity.size, info.checksum_sha256
                    );
                    return Ok(fail(Failure::new(Reason::VerifyMismatch, message)));
                }
                Ok(None) => {
                    let message = format!("object {object} is missing right after its upload");
                    return Ok(fail(Failure::new(Reason::VerifyMissing, message)));
                }
                Err(e) => return Ok(Step::Settle(self.store_failure(e))),
            }
        }
        match local_identity(&run.absolute) {
            Ok(Some(now)) if self.same_file(&run.absolute, &work.identity, &work.hash.sha256, now).await => {}
            Ok(_) => {
                let message = format!("{} changed or vanished after it was hashed", run.absolute.display());
                return Ok(Step::Rehash(Outcome::Retry(Failure::new(Reason::LocalChanged, message))));
            }
            Err(failure) => return Ok(fail(failure)),
        }
        Ok(Step::To(Stage::Verified(work)))
    }

    /// Record: one compare-and-set on the row.
    pub(super) async fn record(&self, run: &mut Run, work: Box<Work>) -> Result<Step, JournalError> {
        pause_point("before_record").await;
        let sha_hex = work.hash.sha256.to_hex();
        let request = RecordRequest {
            venta_id: work.row.id,
            expected_confronta: run.entry.path().as_str(),
            expected_object_name: work.row.minio_object_name.as_deref(),
            url: &work.url,
            object_name: work.object.as_str(),
            sha256_hex: &sha_hex,
        };
        let record_started = Instant::now();
        let recorded = self.db.record(&request).await;
        telemetry::step_time(Timed::Record, record_started.elapsed());
        if recorded.is_ok() {
            // The compare-and-set ended the claim (`SalesRows::record`).
            run.claimed.retain(|id| *id != work.row.id);
        }
        match recorded {
            Ok(RecordOutcome::Recorded) => {
                self.db_health.up();
                // The compare-and-set just matched: the row points at our object, no need to ask again.
                let row_check = RowCheck::JustRecorded { answer_verified_at: work.answer_verified_at };
                Ok(Step::ToThenPause(Stage::Recorded(row_check), "after_record"))
            }
            Ok(RecordOutcome::RowChanged) => Ok(self.row_changed(run, &work).await),
            Err(e) => Ok(Step::Settle(self.db_failure(e))),
        }
    }

    /// Whether the file now at `absolute` (`now`) is the version that was hashed. A version that
    /// differs only in its ctime (Django's chmod right after writing, or a rewrite with the
    /// mtime set back) is read again: only the same bytes make it the same file.
    pub(super) async fn same_file(
        &self,
        absolute: &Path,
        hashed: &FileIdentity,
        sha256: &Sha256Digest,
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

    /// The object name and stored URL for this row and content, refused when the URL or the
    /// name would not fit the table's columns.
    pub(super) fn name_object(
        &self,
        row: &VentaRow,
        sha256: &Sha256Digest,
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

    /// The file's hash, the file made durable as it is read (`hash_file_durably`).
    pub(super) async fn hash(&self, absolute: &Path, identity: FileIdentity) -> Result<FileHash, Failure> {
        self.hash_with(absolute, identity, hash_file_durably).await
    }

    /// The file's hash and nothing else: for `--dry-run`, which leaves even the disk's cache as
    /// it found it.
    pub(super) async fn hash_only(
        &self,
        absolute: &Path,
        identity: FileIdentity,
    ) -> Result<FileHash, Failure> {
        self.hash_with(absolute, identity, crate::hash::hash_file).await
    }

    async fn hash_with(
        &self,
        absolute: &Path,
        identity: FileIdentity,
        read: fn(&Path, Option<u64>) -> Result<FileHash, ReadError>,
    ) -> Result<FileHash, Failure> {
        let path = absolute.to_owned();
        // The same part size the upload will cut the file into (grown past 10,000 parts).
        let part_size = (identity.size > self.multipart_threshold)
            .then(|| crate::store::part_size_for(identity.size, self.part_size));
        let hashed = tokio::task::spawn_blocking(move || read(&path, part_size))
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
}
