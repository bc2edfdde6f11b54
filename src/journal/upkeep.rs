//! Journal upkeep while the daemon runs: entries of files removed long ago are forgotten and
//! their pages given back, on a connection of its own so the writer never waits for it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection};

use super::{now_ms, on_blocking_thread, Journal, JournalError};

impl Journal {
    /// Forgets at most `batch` files removed more than `older_than_ms` ago; their rows and
    /// objects are the record now. Returns how many went: fewer than `batch` means none is left.
    pub async fn prune_removed(&self, older_than_ms: i64, batch: usize) -> Result<usize, JournalError> {
        self.with(move |c| prune_batch(c, older_than_ms, batch)).await
    }

    /// Keeps the journal small for as long as the daemon runs: every `every`, entries of files
    /// removed more than `retention` ago are forgotten, then their space is given back and the
    /// WAL checkpointed. Ends when `shutdown` turns true.
    ///
    /// Off the pipeline's path: it works on a connection of its own, so the group-commit
    /// writer never waits for the shared connection's mutex, only (in SQLite's WAL mode, for
    /// one small transaction at most) for the write lock; each transaction deletes one batch,
    /// with a pause between them. Its commits skip the fsync (`synchronous = NORMAL`: a prune
    /// lost in a crash is only done again), and it checkpoints the WAL itself, passively, so
    /// that the writer's commits do not inherit the checkpoints its deletes would cause.
    pub async fn keep_small(
        self,
        retention: std::time::Duration,
        every: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        const BATCH: usize = 500;
        const PAGES: u32 = 256;
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(25);
        let retention_ms = retention.as_millis() as i64;
        let upkeep = match Upkeep::open(&self.path, self.unusable.clone()).await {
            Ok(upkeep) => upkeep,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the journal for pruning; it is not pruned until a restart");
                return;
            }
        };
        loop {
            let mut pruned = 0usize;
            loop {
                let done = match upkeep.run(move |c| prune_batch(c, retention_ms, BATCH)).await {
                    Ok(n) => {
                        pruned += n;
                        n < BATCH
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not prune the journal; trying again later");
                        true
                    }
                };
                // Keeps the WAL from growing by a whole prune's worth of pages.
                let _ = upkeep.run(|c| c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))).await;
                if done || *shutdown.borrow() {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
            if pruned > 0 {
                tracing::info!(
                    pruned,
                    retention_days = retention.as_secs() / 86_400,
                    "forgot journal entries of files removed before the retention"
                );
                while !*shutdown.borrow() {
                    match upkeep.run(move |c| give_back_pages(c, PAGES)).await {
                        Ok(left) if left > 0 => tokio::time::sleep(PAUSE).await,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not give the journal's free pages back");
                            break;
                        }
                    }
                }
                if let Err(e) =
                    upkeep.run(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))).await
                {
                    tracing::warn!(error = %e, "could not checkpoint the journal");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Deletes at most `batch` entries of files removed before `now - older_than_ms`, through the
/// `files_state` index, in one transaction.
fn prune_batch(c: &Connection, older_than_ms: i64, batch: usize) -> rusqlite::Result<usize> {
    let cutoff = now_ms() - older_than_ms;
    c.prepare_cached(
        "DELETE FROM files WHERE rowid IN \
         (SELECT rowid FROM files WHERE state = 'removed' AND updated_ms < ?1 LIMIT ?2)",
    )?
    .execute(params![cutoff, batch as i64])
}

/// Hands at most `pages` free pages back to the file system, where the journal allows it
/// (`auto_vacuum = INCREMENTAL`, journals created since issue 17; an older one keeps its free
/// pages and reuses them). Returns how many free pages are left to give back.
pub(super) fn give_back_pages(c: &Connection, pages: u32) -> rusqlite::Result<i64> {
    let incremental: i64 = c.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))?;
    if incremental != 2 {
        return Ok(0);
    }
    c.execute_batch(&format!("PRAGMA incremental_vacuum({pages})"))?;
    c.query_row("PRAGMA freelist_count", [], |row| row.get(0))
}

/// The pruning task's own connection to the journal (see `Journal::keep_small`).
struct Upkeep {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    /// The journal's: a failed fsync here makes it unusable too.
    unusable: Arc<std::sync::atomic::AtomicBool>,
}

impl Upkeep {
    async fn open(path: &Path, unusable: Arc<std::sync::atomic::AtomicBool>) -> Result<Upkeep, JournalError> {
        let owned = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            let c = Connection::open(&owned)?;
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            // This connection checkpoints by itself, passively, after each batch.
            c.pragma_update(None, "wal_autocheckpoint", 0)?;
            Ok::<_, rusqlite::Error>(c)
        })
        .await;
        let io = |message: String| JournalError::Io { path: path.to_owned(), message };
        let connection = opened.map_err(|e| io(e.to_string()))?.map_err(|e| io(e.to_string()))?;
        Ok(Upkeep { path: path.to_owned(), connection: Arc::new(Mutex::new(connection)), unusable })
    }

    async fn run<T, F>(&self, work: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        on_blocking_thread(&self.connection, &self.path, &self.unusable, "journal upkeep", work).await
    }
}
