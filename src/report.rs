//! What the operations print: the human lines and the JSON of `check`, `verify`, `status`,
//! `orphans`, the rescan summary and `--dry-run`, and the progress bar beside them. Rendering
//! only: `app` runs the operations and chooses the exit codes.
//!
//! Lines that report one row or file as it is known go through `std::io::Write` and return its
//! error, so that a reader who went away (`verify | head`) stops the walk behind them.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::time::Duration;

use indicatif::HumanBytes;
use serde::{Serialize, Serializer};
use tracing::warn;

use crate::commands::{
    AdoptPlan, Explanation, OrphanEvent, OrphanSummary, Repair, RepairLine, RepairSummary, StatusReport,
    VerifyReport, VerifySummary,
};
use crate::config::Config;
use crate::daemon::Summary;
use crate::media_path::RelativeMediaPath;
use crate::pipeline::{Plan, PlanAction};
use crate::store::{
    part_size_for, BucketSetup, Deleted, ObjectLock, ObjectPolicy, Probe, Versioning, MAX_OBJECT_BYTES,
    MAX_PARTS,
};

/// `check`'s answer: how the bucket is set up, what the probe wrote, what the object store
/// enforces, what every upload asks for and how large a file may go up.
pub fn check(config: &Config, bucket: &BucketSetup, probe: &Probe) {
    let capabilities = &probe.capabilities;
    println!("configuration, database columns and bucket {} are fine", config.minio.bucket);
    println!("bucket {}: {}", config.minio.bucket, bucket_setup(bucket));
    for unknown in &bucket.unknown {
        println!("  could not read: {unknown}");
    }
    println!("probe: {}", probe.writes);
    println!("uploads: {}", object_policy(&ObjectPolicy::from_config(&config.minio)));
    println!(
        "object store: checksums enforced; conditional writes (If-None-Match: *) {}; small uploads verified by the PUT's answer ({})",
        if capabilities.conditional_put { "honoured" } else { "not honoured: each name is stat'ed first" },
        if capabilities.checksum_answered {
            "it carries the checksum it checked"
        } else {
            "the server checked the signed checksum header; its answer does not repeat it"
        }
    );
    println!("{}", upload_limits(config));
}

/// A bucket's versioning, object lock and default encryption, in one line.
fn bucket_setup(setup: &BucketSetup) -> String {
    let versioning = match setup.versioning {
        Some(Versioning::Enabled) => "versioning enabled",
        Some(Versioning::Suspended) => "versioning suspended",
        Some(Versioning::Unversioned) => "no versioning",
        None => "versioning unknown",
    };
    let lock = match &setup.object_lock {
        Some(ObjectLock::Off) => "no object lock".to_owned(),
        Some(ObjectLock::On { default_retention: Some(retention) }) => format!(
            "object lock with a default retention of {} in {} mode",
            retention.period,
            retention.mode.as_str()
        ),
        Some(ObjectLock::On { default_retention: None }) => {
            "object lock without a default retention".to_owned()
        }
        None => "object lock unknown".to_owned(),
    };
    let encryption = match &setup.default_encryption {
        Some(Some(encryption)) => format!("default encryption {encryption}"),
        Some(None) => "no default encryption".to_owned(),
        None => "default encryption unknown".to_owned(),
    };
    format!("{versioning}; {lock}; {encryption}")
}

/// What every upload asks for, and what becomes of a corrected venta's old object.
fn object_policy(policy: &ObjectPolicy) -> String {
    let encryption = match &policy.encryption {
        Some(encryption) => format!("server-side encryption {encryption}"),
        None => "no server-side encryption asked for".to_owned(),
    };
    let retention = match policy.retention {
        Some(retention) => format!("retention {} for {} days", retention.mode.as_str(), retention.days),
        None => "no retention asked for (the bucket's default applies)".to_owned(),
    };
    let previous = if policy.keep_previous_objects {
        "a corrected venta's old object is kept"
    } else {
        "a corrected venta's old object is deleted (a version stays where the bucket keeps versions)"
    };
    format!("{encryption}; {retention}; {previous}")
}

/// The largest file the settings let through, and how it goes up: `validation.max_bytes`
/// (or, with no limit there, S3's largest object) cut into `part_size_bytes` parts, grown where
/// more than S3's 10,000 would be needed. A grown part is read into memory whole while it is
/// sent, so an operator sizing `max_bytes` sees what that costs.
fn upload_limits(config: &Config) -> String {
    let (largest, source) = match config.validation.max_bytes {
        0 => (MAX_OBJECT_BYTES, "no validation.max_bytes: S3's largest object"),
        max => (max, "validation.max_bytes"),
    };
    let threshold = config.minio.multipart_threshold_bytes;
    if largest <= threshold {
        return format!("largest file: {} ({source}), sent in one PUT", HumanBytes(largest));
    }
    let configured = config.minio.part_size_bytes;
    let part = part_size_for(largest, configured);
    let grown = if part > configured {
        format!(
            "; files over {} ({MAX_PARTS} parts of part_size_bytes) go up in larger parts, up to {} each, read into memory whole while it is sent",
            HumanBytes(configured * MAX_PARTS),
            HumanBytes(part)
        )
    } else {
        String::new()
    };
    format!(
        "largest file: {} ({source}); files over {} go up in parts of {}, the largest in {} parts{grown}",
        HumanBytes(largest),
        HumanBytes(threshold),
        HumanBytes(part),
        largest.div_ceil(part)
    )
}

/// One row of `verify`.
pub fn verify_row(out: &mut impl Write, report: &VerifyReport) -> io::Result<()> {
    let size = report.size.map(|s| format!("{s} bytes")).unwrap_or_else(|| "-".into());
    match &report.problem {
        None => writeln!(out, "ok        venta {:>8}  {}  {size}", report.venta_id, report.object),
        Some(problem) => {
            writeln!(out, "MISMATCH  venta {:>8}  {}  {size}: {problem}", report.venta_id, report.object)
        }
    }
}

pub fn verify_summary(summary: &VerifySummary) {
    println!(
        "verify: {} rows checked, {} ok, {} mismatched",
        summary.checked,
        summary.checked - summary.mismatched,
        summary.mismatched
    );
}

pub fn status(report: &StatusReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
        return;
    }
    println!(
        "rows: {} in MinIO, {} still local ({:.1}% in MinIO)",
        report.rows_in_minio, report.rows_local, report.percent_in_minio
    );
    let states: Vec<String> = report.journal_states.iter().map(|(state, n)| format!("{state} {n}")).collect();
    println!("journal: {}", if states.is_empty() { "empty".into() } else { states.join(", ") });
    let unowned: Vec<String> =
        report.unowned_by_reason.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    println!(
        "waiting for their row: {}, orphans: {}{}",
        report.waiting_for_row,
        report.orphans,
        if unowned.is_empty() {
            String::new()
        } else {
            format!(" (no row may own them: {}; see confronta-sync adopt)", unowned.join(", "))
        }
    );
    let reasons: Vec<String> =
        report.failures_by_reason.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    println!("failures by reason: {}", if reasons.is_empty() { "none".into() } else { reasons.join(", ") });
    match (report.upload_ms_mean, report.upload_ms_p95) {
        (Some(mean), Some(p95)) => {
            println!("upload time: mean {mean:.0} ms, p95 {p95} ms over {} files", report.uploads_timed)
        }
        _ => println!("upload time: no uploads yet"),
    }
    for (class, line) in &report.last_errors {
        println!("last {class} error: {line}");
    }
}

/// What `explain` found, as one screen of text or one JSON object.
pub fn explain(explanation: &Explanation, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(explanation).unwrap_or_default());
        return;
    }
    let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    match (&explanation.venta, &explanation.path) {
        (Some(venta), Some(path)) => println!("venta {venta} (file {path})"),
        (Some(venta), None) => println!("venta {venta}"),
        (None, path) => println!("file {}", shown(path)),
    }
    if let Some(file) = &explanation.local_file {
        match file.size {
            Some(size) => println!("local file: {} ({size} bytes)", file.absolute.display()),
            None => println!("local file: none at {}", file.absolute.display()),
        }
    }
    for copy in &explanation.quarantine {
        let size = copy.size.map_or_else(|| "only its note".to_owned(), |size| format!("{size} bytes"));
        let reason = copy.note.as_deref().and_then(|note| note.lines().next()).unwrap_or("no note");
        println!("quarantine: {} ({size}): {reason}", copy.path.display());
    }
    if explanation.rows.is_empty() {
        println!("row: none");
    }
    for row in &explanation.rows {
        let owns = match row.owns_the_file {
            Some(false) => {
                " (named the path while no file was there: does not own a file that appeared later)"
            }
            _ => "",
        };
        println!("row: venta {} ({}){owns}", row.venta_id, row.numero);
        println!(
            "  confronta {}, object {}, confronta_subido_a_minio {}, sha256 {}",
            shown(&row.confronta),
            shown(&row.object_name),
            row.subido_a_minio,
            shown(&row.sha256)
        );
        println!("  confronta_sync_error {}, assigned {}", shown(&row.sync_error), shown(&row.assigned));
    }
    for mark in &explanation.missing_marks {
        println!(
            "seen naming the path while no file was there: venta {} (assigned {}) since {}",
            mark.venta_id,
            shown(&mark.assigned),
            mark.since
        );
    }
    if explanation.journal.is_empty() {
        println!("journal: no entry");
    }
    for entry in &explanation.journal {
        println!("journal ({}): {} {}", entry.journal.display(), entry.path, entry.state);
        println!(
            "  first seen {}, updated {}, attempts {}, venta {}, object {}, previous object {}",
            entry.first_seen,
            entry.updated,
            entry.attempts,
            entry.venta_id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
            shown(&entry.object_name),
            shown(&entry.previous_object)
        );
        match (&entry.reason, &entry.last_error) {
            (Some(reason), Some(error)) => println!("  last reason: {reason}: {error}"),
            (Some(reason), None) => println!("  last reason: {reason}"),
            (None, Some(error)) => println!("  last reason: {error}"),
            (None, None) => {}
        }
    }
    for document in &explanation.documents {
        let object = &document.object;
        let state = match (object.present, object.size) {
            (true, Some(size)) => format!("present, {size} bytes"),
            _ => "not in the bucket".to_owned(),
        };
        let encryption = object.encryption.as_deref().map(|e| format!(", encrypted {e}")).unwrap_or_default();
        let problem = object.problem.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        println!(
            "document{}: {} ({state}{encryption}){problem}",
            if document.current { " (current)" } else { "" },
            document.object_name
        );
        if document.recorded.is_some() || document.from_path.is_some() {
            println!(
                "  recorded {} from {}{}",
                shown(&document.recorded),
                shown(&document.from_path),
                document.superseded.as_deref().map(|at| format!(", superseded {at}")).unwrap_or_default()
            );
        }
        for version in &document.versions {
            let what = if version.delete_marker {
                "delete marker".to_owned()
            } else {
                format!("{} bytes", version.size)
            };
            println!(
                "  version {}: {what}, {}{}",
                version.version_id.as_deref().unwrap_or("-"),
                shown(&version.modified),
                if version.latest { " (latest)" } else { "" }
            );
        }
    }
    for action in &explanation.operator_log {
        println!("operator: {} {} at {}", action.command, action.detail, action.at);
    }
    println!("next: {}", explanation.next);
    println!("remedy: {}", shown(&explanation.remedy));
}

/// What `adopt` found and will do (or, with `--dry-run`, would do).
pub fn adopt_plan(plan: &AdoptPlan, dry_run: bool) {
    println!("file:   {} ({} bytes)", plan.path, plan.size);
    match &plan.journal {
        Some((state, Some(why))) => println!("daemon: {}, {why}", state.as_str()),
        Some((state, None)) => println!("daemon: {}", state.as_str()),
        None => println!("daemon: no journal entry for it yet"),
    }
    let row = &plan.row;
    println!(
        "venta {} ({}): confronta {}, object {}",
        plan.venta_id,
        row.numero,
        row.confronta.as_deref().filter(|c| !c.is_empty()).unwrap_or("none"),
        row.minio_object_name.as_deref().filter(|o| !o.is_empty()).unwrap_or("none")
    );
    let verb = if dry_run { "would give" } else { "gives" };
    println!("{verb} venta {} the file {}, as a new upload would", plan.venta_id, plan.path);
    if let Some(replaced) = &plan.replaces {
        println!("  it replaces the venta's document {replaced}, which is deleted once the file is recorded (as for any correction)");
    }
    if dry_run {
        println!("dry run: nothing was changed");
    } else {
        println!("done: the daemon moves the file at its next look at it (within pipeline.retry_max_s)");
    }
}

/// One object of `repair`, as it is decided.
pub fn repair_line(line: &RepairLine) {
    let RepairLine { venta_id, object, repair } = line;
    match repair {
        Repair::Current => println!("ok          venta {venta_id:>8}  {object}"),
        Repair::Repointed { dry_run, was } => {
            let was = was.as_deref().unwrap_or("no object");
            let verb = if *dry_run { "would point" } else { "REPOINTED  " };
            println!("{verb} venta {venta_id:>8}  {object}  (it pointed at {was})")
        }
        Repair::Skipped(why) => println!("skipped     venta {venta_id:>8}  {object}: {why}"),
        Repair::Failed(why) => println!("FAILED      venta {venta_id:>8}  {object}: {why}"),
    }
}

pub fn repair_summary(summary: &RepairSummary, dry_run: bool) {
    println!(
        "repair: {} recorded objects checked, {} current, {} {}, {} skipped, {} failed{}",
        summary.checked,
        summary.current,
        summary.repointed,
        if dry_run { "would be re-pointed" } else { "re-pointed" },
        summary.skipped,
        summary.failed,
        if dry_run { "; nothing was changed" } else { "" }
    );
}

/// One orphan file or object of `orphans`, as it is found; the counts only move `progress`.
pub fn orphan_event(progress: &indicatif::ProgressBar, event: OrphanEvent) -> io::Result<()> {
    match event {
        OrphanEvent::File(file) => progress.suspend(|| writeln!(io::stdout(), "orphan file    {file}")),
        OrphanEvent::ReferencesRead(count) => {
            progress.set_message("references read");
            progress.set_position(count);
            Ok(())
        }
        OrphanEvent::ObjectsListed(count) => {
            progress.set_message("objects listed");
            progress.set_position(count);
            Ok(())
        }
        OrphanEvent::Object { name, deleted } => {
            let deleted = match deleted {
                None => "",
                Some(Deleted::Removed) => "  (deleted)",
                Some(Deleted::Marked { .. }) => "  (deleted: a delete marker hides it, its versions stay)",
            };
            progress.suspend(|| writeln!(io::stdout(), "orphan object  {name}{deleted}"))
        }
        OrphanEvent::DeleteRefused { name, error } => progress.suspend(|| {
            writeln!(io::stdout(), "orphan object  {name}  (not deleted: the server refused: {error})")
        }),
    }
}

pub fn orphans_summary(summary: &OrphanSummary, older_than: Duration, delete_objects: bool) {
    println!(
        "orphans older than {}: {} files, {} objects{}",
        humantime::format_duration(older_than),
        summary.files,
        summary.objects,
        if delete_objects { deleted_objects(summary) } else { String::new() }
    );
}

/// What `orphans --delete-objects` did to the objects, for its summary line.
fn deleted_objects(summary: &OrphanSummary) -> String {
    let mut said = format!(", {} objects deleted", summary.deleted);
    if summary.marked > 0 {
        said.push_str(&format!(
            " ({} behind a delete marker: the bucket keeps versions, and each stays, a retained one until its retention ends)",
            summary.marked
        ));
    }
    if summary.refused > 0 {
        said.push_str(&format!(", {} the server refused to delete", summary.refused));
    }
    said
}

/// The rescan's `--json` summary: the counts, and the totals the Django command reads.
#[derive(Serialize)]
struct RescanJson<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    succeeded: u64,
    failed_total: u64,
    skipped: u64,
    total: u64,
    elapsed_s: f64,
}

pub fn rescan_summary(summary: &Summary, elapsed: Duration, json: bool) {
    // Kept files (rejected, row changed) failed to move; files without a row and rows another
    // sidecar held are skipped, and neither changes the exit code.
    let succeeded = summary.moved;
    let failed = summary.failed + summary.kept;
    let skipped = summary.orphans + summary.busy;
    let total = succeeded + failed + skipped;
    if json {
        let report = RescanJson {
            summary,
            succeeded,
            failed_total: failed,
            skipped,
            total,
            elapsed_s: elapsed.as_secs_f64(),
        };
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return;
    }
    for problem in &summary.problems {
        println!("  {problem}");
    }
    if summary.problems_omitted > 0 {
        println!("  … and {} more (see the log)", summary.problems_omitted);
    }
    let reasons: Vec<String> = summary.reasons.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    println!(
        "rescan: {succeeded} succeeded, {failed} failed, {skipped} skipped, {total} total; {} bytes in {:.1}s{}",
        summary.bytes,
        elapsed.as_secs_f64(),
        if reasons.is_empty() { String::new() } else { format!(" (reasons: {})", reasons.join(", ")) }
    );
    if failed > 0 {
        warn!(failed, "rescan finished with failures");
    }
}

/// What `--dry-run` has counted so far. Cells, because the JSON document reads them after its
/// `files` array, which is what counts them as it is written.
#[derive(Default)]
struct DryRunTally {
    would_move: Cell<u64>,
    would_skip: Cell<u64>,
    bytes: Cell<u64>,
}

impl DryRunTally {
    /// Counts `plan` and says what it would do.
    fn action(&self, plan: &Plan) -> String {
        let object = plan.object.as_deref().unwrap_or("");
        let (moves, action) = match &plan.action {
            PlanAction::Upload => {
                self.bytes.set(self.bytes.get() + plan.size.unwrap_or(0));
                (true, format!("would upload to {object}"))
            }
            PlanAction::RecordExisting => (true, format!("already uploaded as {object}; would record")),
            PlanAction::FinishRecorded => {
                (true, format!("already recorded as {object}; would remove the local copy"))
            }
            PlanAction::Quarantine(reason) => (false, format!("would quarantine: {reason}")),
            PlanAction::Skip(reason) => (false, format!("would skip: {reason}")),
        };
        let counter = if moves { &self.would_move } else { &self.would_skip };
        counter.set(counter.get() + 1);
        action
    }
}

/// One file of the `--dry-run --json` document.
#[derive(Serialize)]
struct DryRunFile<'a> {
    path: &'a str,
    venta: Option<i64>,
    numero: Option<String>,
    object: Option<String>,
    size: Option<u64>,
    /// What the run would do, for scripts: `upload`, `record` (the object already holds the
    /// bytes), `remove` (recorded before a stop), `quarantine` or `keep` (the file stays).
    verdict: &'static str,
    action: String,
}

/// The `--dry-run --json` document.
#[derive(Serialize)]
#[serde(bound(serialize = "Streamed<I>: Serialize"))]
struct DryRunJson<'a, I> {
    dry_run: bool,
    files: Streamed<I>,
    would_move: &'a Cell<u64>,
    would_skip: &'a Cell<u64>,
    bytes: &'a Cell<u64>,
    rows_missing_their_file: &'a [String],
}

/// A JSON array written from an iterator as it yields, so that no list is held whole.
struct Streamed<I>(RefCell<Option<I>>);

impl<I, T> Serialize for Streamed<I>
where
    I: Iterator<Item = T>,
    T: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.0.borrow_mut().take().ok_or_else(|| serde::ser::Error::custom("written twice"))?;
        serializer.collect_seq(items)
    }
}

/// `--rescan --dry-run`: each file's plan as `plans` yields it (the caller makes each plan only
/// when it is asked for, so a 100,000-file backlog's answer is never held whole), then the
/// totals and `summary`'s rows that point at a missing file; as lines, or as one JSON document.
pub fn dry_run<'a>(
    out: &mut impl Write,
    plans: impl Iterator<Item = (&'a RelativeMediaPath, Plan)>,
    summary: &Summary,
    json: bool,
) -> io::Result<()> {
    let tally = DryRunTally::default();
    if json {
        let files = plans.map(|(path, plan)| {
            let action = tally.action(&plan);
            let (venta, numero) = plan.venta.map_or((None, None), |(id, numero)| (Some(id), Some(numero)));
            let verdict = match plan.action {
                PlanAction::Upload => "upload",
                PlanAction::RecordExisting => "record",
                PlanAction::FinishRecorded => "remove",
                PlanAction::Quarantine(_) => "quarantine",
                PlanAction::Skip(_) => "keep",
            };
            DryRunFile {
                path: path.as_str(),
                venta,
                numero,
                object: plan.object,
                size: plan.size,
                verdict,
                action,
            }
        });
        let document = DryRunJson {
            dry_run: true,
            files: Streamed(RefCell::new(Some(files))),
            would_move: &tally.would_move,
            would_skip: &tally.would_skip,
            bytes: &tally.bytes,
            rows_missing_their_file: &summary.problems,
        };
        serde_json::to_writer(&mut *out, &document)?;
        return writeln!(out);
    }
    for (path, plan) in plans {
        let venta = plan
            .venta
            .as_ref()
            .map(|(id, numero)| format!("venta {id} ({numero})"))
            .unwrap_or_else(|| "no venta".into());
        let size = plan.size.map(|s| format!("{s} bytes")).unwrap_or_else(|| "-".into());
        writeln!(out, "{path}  {venta}  {size}  {}", tally.action(&plan))?;
    }
    for problem in &summary.problems {
        writeln!(out, "  {problem}")?;
    }
    if summary.problems_omitted > 0 {
        writeln!(out, "  … and {} more (see the log)", summary.problems_omitted)?;
    }
    let (would_move, would_skip) = (tally.would_move.get(), tally.would_skip.get());
    writeln!(
        out,
        "dry run: {} files, {would_move} would move ({} bytes), {would_skip} would be skipped, {} rows point at a missing file; nothing was changed",
        would_move + would_skip,
        tally.bytes.get(),
        summary.failed
    )
}

/// A progress bar on stderr, drawn only when stderr is a terminal; `total` unknown makes it a
/// counter. Lines printed through `suspend` pass above it without tearing.
pub fn progress_bar(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    if !io::IsTerminal::is_terminal(&io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => {
            (indicatif::ProgressBar::new(total), "{bar:40} {pos}/{len} {msg} ({per_sec}, eta {eta})")
        }
        None => (indicatif::ProgressBar::new_spinner(), "{spinner} {pos} {msg} ({per_sec})"),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(minio: &str, validation: &str) -> Config {
        let text = format!(
            "[watch]\nmedia_root = \"/m\"\n[database]\nurl = \"sqlite:///db\"\n[minio]\nendpoint = \"http://127.0.0.1:9\"\n\
             access_key = \"k\"\n{minio}\n[validation]\n{validation}\n[journal]\npath = \"/j\"\n"
        );
        Config::parse(&text, Path::new("t.toml")).unwrap()
    }

    /// Issue 17, item 7: `check` says the largest file the settings allow and how it goes up.
    #[test]
    fn check_names_the_largest_file_and_its_parts() {
        let cases = [
            ("", "", "largest file: 50.00 MiB (validation.max_bytes); files over 5.00 MiB go up in parts of 5.00 MiB, the largest in 10 parts"),
            ("multipart_threshold_bytes = 104857600", "", "largest file: 50.00 MiB (validation.max_bytes), sent in one PUT"),
            ("", "max_bytes = 107374182400", "largest file: 100.00 GiB (validation.max_bytes); files over 5.00 MiB go up in parts of 11.00 MiB, the largest in 9310 parts; files over 48.83 GiB (10000 parts of part_size_bytes) go up in larger parts, up to 11.00 MiB each, read into memory whole while it is sent"),
            ("", "max_bytes = 0", "largest file: 5.00 TiB (no validation.max_bytes: S3's largest object); files over 5.00 MiB go up in parts of 525.00 MiB, the largest in 9987 parts; files over 48.83 GiB (10000 parts of part_size_bytes) go up in larger parts, up to 525.00 MiB each, read into memory whole while it is sent"),
        ];
        for (minio, validation, expected) in cases {
            assert_eq!(upload_limits(&config(minio, validation)), expected, "{minio} {validation}");
        }
    }
}
