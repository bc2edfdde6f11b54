//! Batched compare-and-sets: the files that reach the record step within `GATHER` of each
//! other (up to `MAX_BATCH`) share one statement, one round trip and one commit.
//!
//! Each row is still judged on its own. The statement updates exactly the rows whose
//! compare-and-set holds and that no other transaction has locked (`FOR UPDATE SKIP LOCKED`),
//! and returns their ids. A row it did not update is answered `Alone`: its caller runs the
//! single-row compare-and-set (`Statements::record`) itself, which tells a changed row from a
//! locked one the way it always did (waiting up to `lock_timeout`). So one row's conflict, or a
//! row Django holds locked, never fails or delays the others, and the rare row that goes alone
//! costs what every row cost before.
//!
//! One batch is gathered and sent at a time (`RecordQueue::sending`); files that arrive while it
//! is out form the next one. Gathering is led by whichever waiting caller holds `sending`, so
//! there is no background task to start or stop: a caller dropped mid-send (a shutdown) leaves
//! the rest of its batch answered with an error (`abandoned`), which the pipeline treats as a
//! lost reply (the file stays `verified`; its next run asks the row by id).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use crate::config::ColumnNames;
use crate::db::{DbError, DbErrorKind, RecordOutcome, RecordRequest};

/// The most files one statement records.
pub(super) const MAX_BATCH: usize = 16;

/// How long the first file of a batch waits for others to join it. A commit costs the
/// database a WAL flush and a few hundred microseconds of CPU, which a batch pays once; the
/// wait is short beside a file's upload and is skipped as soon as the batch is full.
pub(super) const GATHER: Duration = Duration::from_millis(2);

/// One file's compare-and-set, owned, waiting for its batch.
pub(super) struct Waiting {
    pub(super) record: OwnedRecord,
    since: Instant,
    answer: oneshot::Sender<Answer>,
}

/// A `RecordRequest` that can wait in the queue.
#[derive(Debug, Clone)]
pub(super) struct OwnedRecord {
    pub(super) venta_id: i64,
    pub(super) expected_confronta: String,
    pub(super) expected_object_name: Option<String>,
    pub(super) url: String,
    pub(super) object_name: String,
    pub(super) sha256_hex: String,
}

impl OwnedRecord {
    pub(super) fn of(request: &RecordRequest<'_>) -> OwnedRecord {
        OwnedRecord {
            venta_id: request.venta_id,
            expected_confronta: request.expected_confronta.to_owned(),
            expected_object_name: request.expected_object_name.map(str::to_owned),
            url: request.url.to_owned(),
            object_name: request.object_name.to_owned(),
            sha256_hex: request.sha256_hex.to_owned(),
        }
    }
}

/// What the batch says about one file.
#[derive(Debug)]
pub(super) enum Answer {
    /// Decided: recorded (and its claim released), or the database failed the whole batch.
    Done(Result<RecordOutcome, DbError>),
    /// The batch did not update the row (its compare-and-set failed, or another transaction
    /// holds it): the caller runs the single-row compare-and-set, which says which.
    Alone,
}

/// The compare-and-sets waiting for a batch.
#[derive(Default)]
pub(super) struct RecordQueue {
    waiting: Mutex<Vec<Waiting>>,
    /// Held by the caller that gathers and sends the next batch.
    pub(super) sending: tokio::sync::Mutex<()>,
    /// Wakes the gathering caller early when a batch is full.
    full: Notify,
}

impl RecordQueue {
    /// Puts a compare-and-set in the queue; its answer comes on the returned receiver.
    pub(super) fn push(&self, record: OwnedRecord) -> oneshot::Receiver<Answer> {
        let (answer, receiver) = oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.push(Waiting { record, since: Instant::now(), answer });
        if waiting.len() >= MAX_BATCH {
            self.full.notify_one();
        }
        receiver
    }

    /// The next batch (empty when nothing waits): once `MAX_BATCH` wait, or once the oldest
    /// has waited `GATHER`. Called with `sending` held.
    pub(super) async fn gather(&self) -> Vec<Waiting> {
        loop {
            let wait = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                // A caller that gave up (its run was dropped) needs no answer.
                waiting.retain(|w| !w.answer.is_closed());
                let Some(oldest) = waiting.first() else { return Vec::new() };
                let wait = GATHER.saturating_sub(oldest.since.elapsed());
                if waiting.len() >= MAX_BATCH || wait.is_zero() {
                    let take = waiting.len().min(MAX_BATCH);
                    return waiting.drain(..take).collect();
                }
                wait
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.full.notified() => {}
            }
        }
    }
}

/// Answers every file of a batch: `updated` are the ids the statement recorded (and released
/// the claims of), the rest go alone; a batch the database failed outright answers each with
/// that error.
pub(super) fn answer(batch: Vec<Waiting>, sent: Result<Vec<i64>, DbError>) {
    match sent {
        Ok(updated) => {
            for waiting in batch {
                let answer = if updated.contains(&waiting.record.venta_id) {
                    Answer::Done(Ok(RecordOutcome::Recorded))
                } else {
                    Answer::Alone
                };
                let _ = waiting.answer.send(answer);
            }
        }
        // The database is unreachable: going alone would only fail again, one by one.
        Err(e) if e.is_unavailable() => {
            for waiting in batch {
                let error = DbError::new(e.kind, e.message.clone());
                let _ = waiting.answer.send(Answer::Done(Err(error)));
            }
        }
        // Refused for some value (a too long URL on a schema that changed under the daemon,
        // a constraint): each row alone finds out whose it is.
        Err(_) => {
            for waiting in batch {
                let _ = waiting.answer.send(Answer::Alone);
            }
        }
    }
}

/// What a caller whose batch was dropped unanswered gets.
pub(super) fn abandoned(venta_id: i64) -> DbError {
    DbError::new(
        DbErrorKind::Unavailable,
        format!("recording venta {venta_id}: the batch carrying it was abandoned before its answer"),
    )
}

/// The batch's statement. `$1`–`$6` are arrays of one element per file (ids, the paths and
/// previous objects the compare-and-set expects, then the URL, object name and SHA-256 to
/// write); `release` is the SQL that releases the claim on row `venta_id`. `free` locks the
/// rows whose compare-and-set holds and that no other transaction holds (so the statement
/// never waits for a row lock, and may run on the pipelined `main` connection, whose session
/// holds the claims); the UPDATE writes exactly those, checking the compare-and-set again on the
/// version it writes, and the final SELECT releases their claims and returns their ids.
///
/// The claims go with the statement rather than after its commit: an advisory unlock is not
/// transactional, so for the moment between the statement and its commit another sidecar may
/// claim a recorded row. It then sees the row as it was (naming the path), and its own
/// compare-and-set, which waits for this commit, fails and finds the row recorded to the same
/// object: duplicated work, never a wrong row. A separate release after the commit would cost
/// every batch a round trip to close a window that short.
pub(super) fn record_sql(table: &str, c: &ColumnNames, release: &str) -> String {
    let cas = format!(
        "t.{confronta} = b.confronta AND t.{object} IS NOT DISTINCT FROM b.previous_object",
        confronta = c.confronta,
        object = c.minio_object_name,
    );
    format!(
        "WITH batch AS (SELECT * FROM unnest(CAST($1 AS bigint[]), CAST($2 AS text[]), CAST($3 AS text[]), \
           CAST($4 AS text[]), CAST($5 AS text[]), CAST($6 AS text[])) \
           AS b(venta_id, confronta, previous_object, url, object_name, sha256)), \
         free AS (SELECT t.{id} AS venta_id FROM {table} t JOIN batch b ON t.{id} = b.venta_id \
           WHERE {cas} FOR UPDATE OF t SKIP LOCKED), \
         updated AS (UPDATE {table} t SET {url} = b.url, {object} = b.object_name, {subido} = TRUE, \
           {sha} = b.sha256, {confronta} = '', {error} = NULL \
           FROM batch b WHERE t.{id} = b.venta_id AND {cas} AND t.{id} IN (SELECT venta_id FROM free) \
           RETURNING CAST(t.{id} AS bigint) AS venta_id) \
         SELECT venta_id, {release} FROM updated",
        id = c.id,
        url = c.minio_url,
        object = c.minio_object_name,
        subido = c.subido_a_minio,
        sha = c.sha256,
        confronta = c.confronta,
        error = c.sync_error,
    )
}

/// The batch's parameters, one array per column of `record_sql`'s `batch`.
pub(super) struct Columns {
    pub(super) ids: Vec<i64>,
    pub(super) confrontas: Vec<String>,
    pub(super) previous_objects: Vec<Option<String>>,
    pub(super) urls: Vec<String>,
    pub(super) object_names: Vec<String>,
    pub(super) sha256s: Vec<String>,
}

impl Columns {
    pub(super) fn of(batch: &[Waiting]) -> Columns {
        let records = batch.iter().map(|w| &w.record);
        Columns {
            ids: records.clone().map(|r| r.venta_id).collect(),
            confrontas: records.clone().map(|r| r.expected_confronta.clone()).collect(),
            previous_objects: records.clone().map(|r| r.expected_object_name.clone()).collect(),
            urls: records.clone().map(|r| r.url.clone()).collect(),
            object_names: records.clone().map(|r| r.object_name.clone()).collect(),
            sha256s: records.map(|r| r.sha256_hex.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(venta_id: i64) -> OwnedRecord {
        OwnedRecord {
            venta_id,
            expected_confronta: format!("confrontas/{venta_id}.pdf"),
            expected_object_name: None,
            url: String::new(),
            object_name: String::new(),
            sha256_hex: String::new(),
        }
    }

    /// At most `MAX_BATCH` go together; the rest form the next batch, in the order they came.
    #[tokio::test]
    async fn a_batch_holds_at_most_sixteen_files_in_arrival_order() {
        let queue = RecordQueue::default();
        let _answers: Vec<_> = (0..MAX_BATCH as i64 + 3).map(|id| queue.push(record(id))).collect();
        let first = queue.gather().await;
        assert_eq!(first.iter().map(|w| w.record.venta_id).collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
        let second = queue.gather().await;
        assert_eq!(second.iter().map(|w| w.record.venta_id).collect::<Vec<_>>(), vec![16, 17, 18]);
        assert!(queue.gather().await.is_empty());
    }

    /// A file whose caller gave up is dropped from the queue, not sent.
    #[tokio::test]
    async fn a_file_whose_caller_gave_up_is_not_sent() {
        let queue = RecordQueue::default();
        let kept = queue.push(record(1));
        drop(queue.push(record(2)));
        let batch = queue.gather().await;
        assert_eq!(batch.iter().map(|w| w.record.venta_id).collect::<Vec<_>>(), vec![1]);
        drop(kept);
    }

    /// Rows the statement updated are recorded; the others go alone; an outage answers all.
    #[tokio::test]
    async fn each_file_is_answered_on_its_own() {
        let queue = RecordQueue::default();
        let receivers: Vec<_> = (1..=3).map(|id| queue.push(record(id))).collect();
        let batch = queue.gather().await;
        answer(batch, Ok(vec![1, 3]));
        let answers: Vec<Answer> =
            futures_util::future::join_all(receivers).await.into_iter().map(Result::unwrap).collect();
        assert!(matches!(answers[0], Answer::Done(Ok(RecordOutcome::Recorded))));
        assert!(matches!(answers[1], Answer::Alone));
        assert!(matches!(answers[2], Answer::Done(Ok(RecordOutcome::Recorded))));

        let receivers: Vec<_> = (1..=2).map(|id| queue.push(record(id))).collect();
        let batch = queue.gather().await;
        answer(batch, Err(DbError::new(DbErrorKind::Unavailable, "connection refused")));
        for received in futures_util::future::join_all(receivers).await {
            assert!(matches!(received.unwrap(), Answer::Done(Err(e)) if e.is_unavailable()));
        }
    }
}
