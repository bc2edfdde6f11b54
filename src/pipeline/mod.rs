//! One file's journey, driven by one loop over its journal state: match → claim → hash → upload →
//! verify → record → remove.
//!
//! `Pipeline::process` opens the file's journal entry and finds the run's first `Stage` from
//! its state (`Stage::at_open`, whose arms are the journal's recovery rules, the `journal`
//! module's doc comment, line for line). `drive` then advances it with one `match` on the
//! stage. A stage carries what the run knows there (the claimed row, the hash and the object
//! once `Claimed`), so a step is handed what it needs instead of looking for it. The steps
//! (`steps`, `rows`, `refuse`, `remove`) look at the world and return the next stage or the
//! run's end (`Step`); they never set the journal state: `drive` does, from the stage a step
//! returned. Each step re-checks the world (the file, the row, the object) instead of trusting
//! the journal, and the driver journals a state before the side effect it guards: `hashed`
//! (with the object name) before the upload, `verified` before the row's compare-and-set,
//! `recorded` before the old object and the local file are deleted. This module is the only
//! code that deletes a local file.

mod failure;
mod health;
mod plan;
mod refuse;
mod remove;
mod rows;
mod steps;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tracing::{debug, info, warn, Instrument};

use crate::config::{ConditionalWrites, Config, LiveSettings};
use crate::db::{SalesRows, SchemaLimits, VentaRow};
use crate::error::{pause_point, Classify, ErrorClass, Reason};
use crate::hash::{FileHash, FileIdentity};
use crate::journal::{now_ms, FileState, Journal, JournalEntry, JournalError};
use crate::media_path::{MediaRoot, NoFollowError, RelativeMediaPath};
use crate::object_name::{ObjectName, ObjectNameTemplate};
use crate::store::{Capabilities, ObjectInfo, ObjectStore};
use crate::validation::Validator;

use failure::{fail, give_up};
use health::Health;
pub use plan::{Plan, PlanAction};

/// What became of one call to `process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Uploaded, verified, recorded, and the local file removed.
    Moved { venta_id: i64, object: String, bytes: u64 },
    /// Nothing to do: the file is gone and nothing is pending for it, or it was given up earlier.
    Nothing,
    /// No row may own the file yet (why: `Unowned`); try again later.
    WaitingForRow(Unowned),
    /// No row has been able to own the file for `orphan_after_s` (`owner_wait_s` when only
    /// stale rows name it); it is kept and reported, and looked at again now and then.
    Orphan(Unowned),
    /// Another sidecar holds the row's claim.
    Busy,
    /// A transient failure; try again later.
    Retry(Failure),
    /// Given up for this version of the file, which is kept where it is.
    Kept(Failure),
    /// Nothing can work until an operator acts (schema, configuration).
    Fatal(Failure),
}

/// Why no row may own a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unowned {
    /// No row names the file's path.
    NoRow,
    /// Only rows seen naming the path while no file stood there name it, and none of their
    /// saves assigned a file since: they never own a file that appears later (see
    /// `Pipeline::owners`). The ids, lowest first.
    StaleRows(Vec<i64>),
}

impl Unowned {
    /// What a file no row may own is reported as (`--rescan`'s summary, `status`).
    pub fn failure(&self, path: &RelativeMediaPath) -> Failure {
        match self {
            Unowned::NoRow => Failure::new(Reason::NoRow, "no row points at this file; it is kept"),
            Unowned::StaleRows(ids) => {
                let ventas = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
                Failure::new(
                    Reason::AmbiguousOwner,
                    format!(
                        "only venta {ventas} names this path, and it named it while no file was there: \
                         a file that appears later is not its own unless its save assigned one since; \
                         the file is kept (if it is that venta's: confronta-sync adopt {path} --venta {})",
                        ids[0]
                    ),
                )
            }
        }
    }
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
    /// Swapped whole by a reload (`apply_live`); each run keeps the one it started with.
    validator: RwLock<Arc<Validator>>,
    /// `watch.orphan_after_s`, changed live by a reload.
    orphan_after_ms: AtomicI64,
    store_health: Health,
    db_health: Health,
    /// When this process started: entries given up before it are tried once more.
    started_ms: i64,
    /// Small files go up with `If-None-Match: *` (the server was probed and honours it).
    conditional_put: bool,
    /// The server refuses a PUT whose `x-amz-checksum-sha256` does not match its body (the
    /// probe showed it): a PUT's 200 then verifies the upload.
    checksum_enforced: bool,
    /// The probe's answers carried the checksum back (MinIO, SeaweedFS): on such a server a
    /// 200 without it did not come from the server that was probed (see `verify`).
    checksum_answered: bool,
    /// See `Unowned::StaleRows`: how long a file only stale rows name waits for its owner's
    /// row before it is reported as an orphan. Changed live by a reload.
    owner_wait_ms: AtomicI64,
}

/// One run of one file: its journal entry (changed as the run goes), the row it claimed, and
/// what it was started with. Where the run stands is the `Stage` that `drive` holds.
struct Run {
    entry: JournalEntry,
    absolute: PathBuf,
    /// When the run began (ms since the epoch): how long a file has waited for its row.
    now_ms: i64,
    /// The file at the path when the run began.
    on_disk: Option<FileIdentity>,
    /// The rows this run holds claims on (the lookup claims every row it finds; the run keeps
    /// the one it matched): released when the run ends, however it ends, unless the record
    /// step ended them first.
    claimed: Vec<i64>,
    /// The rules this run judges the file by: a reload in the middle of a run must not judge
    /// it by one set and journal the other's fingerprint.
    validator: Arc<Validator>,
}

/// Where one run of one file stands: the one value `drive` matches. A run starts at the stage
/// its journal state gives (`at_open`); the journal says where the file was, and the run
/// checks the world again before going on. Each variant carries what the run knows there.
enum Stage {
    /// `recorded`: the row points at our object; the local copy is next.
    Recorded(RowCheck),
    /// `refusing`: validation refused the file; the row is cleared, then the file quarantined.
    /// `Some` when this run's validation refused it, with the refusal (`<code>: <detail>`).
    Refusing(Option<String>),
    /// `removed`, `rejected`, `row_changed`: nothing more for this file version.
    Finished,
    /// Any other state, and no file stands at the path.
    Gone,
    /// `seen`, `waiting_for_row`, `failed`, `orphan`: the file (this version) is to be matched,
    /// claimed and hashed.
    Unclaimed(FileIdentity),
    /// `hashed`, `verified` at the start of a run, nothing checked yet: the file (this version)
    /// was matched, hashed and named by an earlier run.
    Resumed(FileIdentity),
    /// The row is matched and claimed, the file hashed, the object named (journaled `hashed`).
    Claimed(Box<Work>),
    /// The object holds the hashed bytes: uploaded by this run, or found there.
    Stored(Box<Work>),
    /// The object and the local file were checked after the upload (journaled `verified`).
    Verified(Box<Work>),
}

impl Stage {
    /// The stage a run of an entry in `state` starts at, `on_disk` the file at its path now.
    /// One arm per line of the journal's recovery table, in its order; no wildcard, so a new
    /// state is not accepted until it has its line.
    fn at_open(state: FileState, on_disk: Option<FileIdentity>) -> Stage {
        use FileState::*;
        match (state, on_disk) {
            // recorded: the row read again, the object checked, the old one retired, the file unlinked.
            (Recorded, _) => Stage::Recorded(RowCheck::ReadAgain),
            // refusing: the row cleared, then the file moved to quarantine; gone: it was moved.
            (Refusing, _) => Stage::Refusing(None),
            // removed, rejected, row_changed: nothing more for this file version.
            (Removed | Rejected | RowChanged, _) => Stage::Finished,
            // any other state, the local file gone: recorded before a power cut took `recorded` back
            // (`verified`), finished elsewhere, forgotten, or reported.
            (Seen | WaitingForRow | Failed | Orphan | Hashed | Verified, None) => Stage::Gone,
            // seen, waiting_for_row, failed, orphan: start over at match and hash.
            (Seen | WaitingForRow | Failed | Orphan, Some(file)) => Stage::Unclaimed(file),
            // hashed, verified: the row by id, then matched and claimed, the hash reused…
            (Hashed | Verified, Some(file)) => Stage::Resumed(file),
        }
    }

    /// The journal state that entering this stage records; `None` for a stage the journal
    /// does not record (the run checked something it need not remember).
    fn journaled_as(&self) -> Option<FileState> {
        match self {
            Stage::Recorded(_) => Some(FileState::Recorded),
            Stage::Refusing(_) => Some(FileState::Refusing),
            Stage::Claimed(_) => Some(FileState::Hashed),
            Stage::Verified(_) => Some(FileState::Verified),
            Stage::Finished | Stage::Gone | Stage::Unclaimed(_) | Stage::Resumed(_) | Stage::Stored(_) => {
                None
            }
        }
    }
}

/// What a run knows once its row is claimed and the file hashed.
struct Work {
    row: VentaRow,
    identity: FileIdentity,
    hash: FileHash,
    content_type: String,
    object: ObjectName,
    url: String,
    /// When this run's own PUT was answered with the 200 that verified the object (see
    /// `Pipeline::verify`); `None` when a stat has to.
    answer_verified_at: Option<Instant>,
}

/// How long after its own PUT verified the object a run may still unlink the file without
/// stat'ing the object once more (see `Pipeline::finish_recorded`). A record takes
/// milliseconds; one that took longer waited on something (a row lock, a slow database), and
/// that wait is a window for anyone with the keys that a stat closes again.
const RECHECK_AFTER: Duration = Duration::from_secs(5);

/// Whether the `recorded` step must read the row again before deleting the local copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowCheck {
    /// This run saw the row point at our object (its compare-and-set matched, or the row read),
    /// and when its own PUT's answer verified the object, if it did (`RECHECK_AFTER`).
    JustRecorded { answer_verified_at: Option<Instant> },
    /// Resuming from the journal: the row may have changed since.
    ReadAgain,
}

/// What a step found, for the driver to carry out. Steps return it and never set the state.
enum Step {
    /// Go on from this stage, its journal state (`Stage::journaled_as`) journaled first when
    /// it has one.
    To(Stage),
    /// As `To`, then the test-only pause point of that name.
    ToThenPause(Stage, &'static str),
    /// Go on from this stage; the journal already says what it needs to (a plan journaled by
    /// an earlier run, an upload a crash would redo from `hashed`).
    Continue(Stage),
    /// The file on disk is not the one hashed: back to `seen` without the hash, and the failure
    /// settled as `Settle` does.
    Rehash(Outcome),
    /// The run ends; a failure is journaled with its class and one more attempt.
    Settle(Outcome),
    /// The run ends in this state (journaled if the entry was in another), with this outcome.
    End(FileState, Outcome),
    /// The run ends with nothing to journal.
    Stop(Outcome),
}

/// What `open` found at the path.
enum Opened {
    Run(Box<Run>, Stage),
    Done(Outcome),
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
            validator: RwLock::new(Arc::new(Validator::new(&config.validation, config.quarantine_dir()))),
            orphan_after_ms: AtomicI64::new(millis(config.watch.orphan_after_s)),
            started_ms: now_ms(),
            conditional_put,
            checksum_enforced: capabilities.checksum_enforced,
            checksum_answered: capabilities.checksum_answered,
            owner_wait_ms: AtomicI64::new(millis(config.watch.owner_wait_s)),
            store_health: Health::new("object store", "s3"),
            db_health: Health::new("database", "db"),
        }
    }

    /// Takes a reload's validation rules and waits: files whose run starts after this are
    /// judged by them. The quarantine folder stays the one the start-up probe checked.
    pub fn apply_live(&self, settings: &LiveSettings) {
        let mut validator = self.validator.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let quarantine = validator.quarantine_dir().to_owned();
        *validator = Arc::new(Validator::new(&settings.validation, quarantine));
        drop(validator);
        self.orphan_after_ms.store(millis(settings.orphan_after.as_secs()), Ordering::Relaxed);
        self.owner_wait_ms.store(millis(settings.owner_wait.as_secs()), Ordering::Relaxed);
    }

    /// The validation rules in effect now.
    fn validator(&self) -> Arc<Validator> {
        self.validator.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
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
            // `advance` contains a panic in the steps; this one catches it before them (opening
            // the entry), where no claim is held yet.
            let advanced = match AssertUnwindSafe(self.advance(path)).catch_unwind().await {
                Ok(advanced) => advanced,
                Err(payload) => self.contain_panic(path, panic_text(payload)).await,
            };
            let outcome = match advanced {
                Ok(outcome) => outcome,
                // Every step's only hard error is the journal: nothing may happen that it has not
                // recorded first, so the file waits.
                Err(e) if e.class() == ErrorClass::Fatal => {
                    Outcome::Fatal(Failure::new(Reason::Journal, format!("cannot write the journal: {e}")))
                }
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
        let (mut run, stage) = match self.open(path).await? {
            Opened::Run(run, stage) => (run, stage),
            Opened::Done(outcome) => return Ok(outcome),
        };
        // A panic in a step stays in this file's run: the row's claim is released as on any
        // other end (a claim held for the process's life would keep the file, and any rescan,
        // off the row for good), and the file fails with its reason like any other failure.
        let driven = AssertUnwindSafe(self.drive(&mut run, stage)).catch_unwind().await;
        for venta_id in std::mem::take(&mut run.claimed) {
            self.db.release_claim(venta_id).await;
        }
        match driven {
            Ok(outcome) => outcome,
            Err(payload) => self.contain_panic(path, panic_text(payload)).await,
        }
    }

    /// A run panicked (a bug, or a value no step expected): counted
    /// (`confronta_task_panics_total`), logged with the panic's message, and journaled as a
    /// failure with reason `task_panicked` on the entry as last written (what the run held in
    /// memory may be half changed). The file is retried with backoff like any transient
    /// failure: a bug that panics every time shows as a rising counter and a file that waits,
    /// never as a daemon that quietly stops moving it.
    async fn contain_panic(&self, path: &RelativeMediaPath, said: String) -> Result<Outcome, JournalError> {
        crate::telemetry::task_panicked();
        tracing::error!(%path, panic = %said, "the file's run panicked; it is retried later (a bug: please report it with this line)");
        let mut entry = match self.journal.get(path).await? {
            Some(entry) => entry,
            None => JournalEntry::new(path.clone(), now_ms()),
        };
        let failure = Failure::new(Reason::TaskPanicked, format!("the file's run panicked: {said}"));
        self.settle(&mut entry, Outcome::Retry(failure)).await
    }

    /// The entry to drive for the file now at `path`: the journaled one while it still
    /// describes that file, a new one otherwise.
    async fn open(&self, path: &RelativeMediaPath) -> Result<Opened, JournalError> {
        let absolute = self.media_root.to_absolute(path);
        let now = now_ms();
        let existing = self.journal.get(path).await?;
        let on_disk = match local_identity(&absolute) {
            Ok(identity) => identity,
            Err(failure @ Failure { reason: Reason::SymlinkedFolder, .. }) => {
                return self.refuse_symlinked_folder(path, existing, failure).await.map(Opened::Done)
            }
            Err(failure) => return Ok(Opened::Done(Outcome::Retry(failure))),
        };
        let fresh = |first_seen_ms: i64| JournalEntry::for_file(path.clone(), first_seen_ms, on_disk);
        let entry = match (existing, on_disk) {
            // Recorded, or refused before the last stop: carried out whatever stands at the path now.
            (Some(entry), _) if entry.state() == FileState::Recorded => entry,
            (Some(entry), _)
                if entry.state() == FileState::Refusing
                    && match (on_disk, entry.identity()) {
                        (None, _) => true,
                        // The refused file itself, its ctime moved by its rename to quarantine:
                        // a power cut took the move's removal back (the quarantine's entry was
                        // fsynced first). Found at its name again, it goes to quarantine again.
                        (Some(now), Some(refused)) => now.same_but_ctime(&refused),
                        (Some(_), None) => false,
                    } =>
            {
                entry
            }
            (None, None) => return Ok(Opened::Done(Outcome::Nothing)),
            (Some(entry), None) => entry,
            // Same file version, still in progress (or given up): continue from where it is.
            (Some(entry), Some(identity))
                if entry.identity() == Some(identity) && entry.state() != FileState::Removed =>
            {
                entry
            }
            // A new file at this path, or one that changed since: start over.
            (Some(previous), Some(identity))
                if !previous.state().is_terminal() && previous.state() != FileState::Orphan =>
            {
                self.note_claimed_file_replaced(&previous, identity).await?;
                fresh(previous.first_seen_ms())
            }
            (_, Some(_)) => fresh(now),
        };
        let entry = match entry.state() {
            FileState::Removed | FileState::Rejected | FileState::RowChanged if on_disk.is_some() => {
                // Given up during this run: leave it. Given up by an earlier run: every start
                // tries kept files once more, since what kept them (a row, a setting, clamd's
                // limit) may have been fixed in between.
                if entry.updated_ms() >= self.started_ms {
                    return Ok(Opened::Done(Outcome::Nothing));
                }
                debug!(state = entry.state().as_str(), "kept by an earlier run; trying it once more");
                fresh(entry.first_seen_ms())
            }
            _ => entry,
        };
        let stage = Stage::at_open(entry.state(), on_disk);
        let run =
            Run { entry, absolute, now_ms: now, on_disk, claimed: Vec::new(), validator: self.validator() };
        Ok(Opened::Run(Box::new(run), stage))
    }

    /// Advances the run from `stage` until a step ends it. The first arms are where a run can
    /// start (`Stage::at_open`, the journal's recovery table); the last three only follow
    /// from the steps before them.
    async fn drive(&self, run: &mut Run, mut stage: Stage) -> Result<Outcome, JournalError> {
        use FileState::*;
        loop {
            let step = match stage {
                Stage::Recorded(row_check) => self.finish_recorded(run, row_check).await?,
                Stage::Refusing(refusal) => self.resume_refusal(run, refusal).await,
                Stage::Finished => Step::Stop(Outcome::Nothing),
                Stage::Gone => self.local_file_gone(&mut run.entry).await?,
                Stage::Unclaimed(file) => self.prepare(run, file).await?,
                Stage::Resumed(file) => self.resume(run, file).await?,
                // …the upload skipped if the object holds exactly the hashed bytes, repeated otherwise…
                Stage::Claimed(work) => self.upload(run, work).await?,
                // …the object verified again, the local file still the hashed one…
                Stage::Stored(work) => self.verify(run, work).await?,
                // …and the row recorded with the compare-and-set.
                Stage::Verified(work) => self.record(run, work).await?,
            };
            stage = match step {
                Step::To(next) => {
                    self.enter(&mut run.entry, &next).await?;
                    next
                }
                Step::ToThenPause(next, point) => {
                    self.enter(&mut run.entry, &next).await?;
                    pause_point(point).await;
                    next
                }
                Step::Continue(next) => next,
                Step::Rehash(outcome) => {
                    run.entry.forget_hash();
                    run.entry.enter(Seen);
                    return self.settle(&mut run.entry, outcome).await;
                }
                Step::Settle(outcome) => return self.settle(&mut run.entry, outcome).await,
                Step::End(state, outcome) => {
                    if run.entry.state() != state {
                        run.entry.enter(state);
                        if state == Removed {
                            // Lost in a power cut, `removed` leaves `recorded` (or the state
                            // before it) with the file gone, which a restart finishes the same
                            // way: it need not wait for its own fsync.
                            self.journal.put_unsynced(&run.entry).await?;
                        } else {
                            self.put(&run.entry).await?;
                        }
                    }
                    return Ok(outcome);
                }
                Step::Stop(outcome) => return Ok(outcome),
            };
        }
    }

    /// Journals the state the run's next stage records, if it records one.
    async fn enter(&self, entry: &mut JournalEntry, next: &Stage) -> Result<(), JournalError> {
        match next.journaled_as() {
            // Just recorded: the commit is kept without waiting for its own fsync (the next
            // synced write of any file carries it, the WAL being appended in order). A power
            // cut that takes it back leaves `verified`, whose next run asks the row by id and
            // finds it recorded, the local file there or not (`resume`, `local_file_gone`):
            // the same end. The row's commit, which the unlink waits for, is the database's.
            Some(state @ FileState::Recorded)
                if matches!(next, Stage::Recorded(RowCheck::JustRecorded { .. })) =>
            {
                entry.enter(state);
                self.journal.put_unsynced(entry).await
            }
            Some(state) => {
                entry.enter(state);
                self.put(entry).await
            }
            None => Ok(()),
        }
    }

    /// `previous` was matched to a row, and another file (another inode) now stands at its
    /// path: the row's own file vanished unseen and the name was taken again. The row named the
    /// path while its file was gone, so it owns the new file only if its save assigned one
    /// since (its stamp moved on from the one the match saw; see `owners`).
    async fn note_claimed_file_replaced(
        &self,
        previous: &JournalEntry,
        now: FileIdentity,
    ) -> Result<(), JournalError> {
        let (Some(venta_id), Some(before)) = (previous.venta_id(), previous.identity()) else {
            return Ok(());
        };
        if (before.dev, before.inode) == (now.dev, now.inode) {
            // The same file, written again or still being written: still that row's.
            return Ok(());
        }
        if self.journal.note_missing(previous.path(), venta_id, previous.row_assigned().clone()).await? {
            warn!(venta_id, "the file matched to this venta was replaced by another; the venta no longer owns what stands at its path unless its save assigns a file");
        }
        Ok(())
    }

    /// A file at `path` was deleted or moved away (a watcher event). The rows still naming the
    /// path name a free name now, which Django hands to the next upload: they are noted as
    /// such, so that a file saved there next is not theirs without a save of their own
    /// (`owners`). Nothing is noted while a file stands at the path: asked after the rows,
    /// since a file saved meanwhile may be a new row's.
    pub async fn note_vanished(&self, path: &RelativeMediaPath) {
        let absolute = self.media_root.to_absolute(path);
        let Ok(rows) = self.db.find_by_confronta(path.as_str()).await else {
            // The reconcile pass notes them later.
            return;
        };
        if rows.is_empty() || !matches!(local_identity(&absolute), Ok(None)) {
            return;
        }
        for row in rows {
            match self.journal.note_missing(path, row.id, row.assigned.clone()).await {
                Ok(true) => {
                    debug!(path = %path, venta_id = row.id, "file removed while a row names it; noted")
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(path = %path, venta_id = row.id, error = %e, "cannot note the removed file in the journal")
                }
            }
        }
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
            Some(entry) if entry.state().is_terminal() && entry.updated_ms() >= self.started_ms => {
                return Ok(Outcome::Nothing)
            }
            Some(entry) => entry,
            None => JournalEntry::new(path.clone(), now_ms()),
        };
        self.settle(&mut entry, Outcome::Kept(failure)).await
    }

    /// Journals what a failing outcome means for the entry, then returns it.
    async fn settle(&self, entry: &mut JournalEntry, outcome: Outcome) -> Result<Outcome, JournalError> {
        let (failure, class) = match &outcome {
            Outcome::Retry(f) => (f, ErrorClass::Transient),
            Outcome::Kept(f) => (f, ErrorClass::Rejected),
            Outcome::Fatal(f) => (f, ErrorClass::Fatal),
            _ => return Ok(outcome),
        };
        entry.count_failure(class, failure.reason, failure.message.clone(), now_ms());
        match (class, entry.state()) {
            (ErrorClass::Rejected, _) => entry.enter(FileState::Rejected),
            // Any later state keeps its progress: a resumed upload or record picks up from it.
            (_, FileState::Seen) => entry.enter(FileState::Failed),
            _ => {}
        }
        self.put(entry).await?;
        Ok(outcome)
    }

    async fn put(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        self.journal.put(entry).await
    }
}

/// What a panic said: its message when it had one (`panic!` with a literal or a format).
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "a panic without a message".to_owned(), |text| (*text).to_owned()),
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

/// The `attempt`-th retry's backoff before its jitter: doubling from `initial`, capped at `max`
/// (`explain` says when a retry is due with it).
pub fn nominal_backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    initial.saturating_mul(1u32 << attempt.min(20)).min(max)
}

/// Backoff for the `attempt`-th retry: doubling from `initial`, capped, with ±25 % jitter so
/// that files failed by one outage do not all retry at the same instant.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let capped = nominal_backoff(attempt, initial, max);
    let jitter = rand::random_range(0.75..1.25);
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests;

/// `seconds` in milliseconds, for the journal's clock (validated far below `i64::MAX`).
fn millis(seconds: u64) -> i64 {
    (seconds as i64).saturating_mul(1000)
}
