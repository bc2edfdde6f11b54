//! The last start-up probe's result per endpoint and bucket (table `probes`), so that a start
//! on a bucket that keeps versions (where a scratch object cannot be deleted, and under object
//! lock stays retained for years) writes nothing when the result it would learn is already
//! known (issue 29).
//!
//! The table is created on first use, within schema version 1: an older binary never reads
//! it, and a journal without it simply has no kept result (the next probe writes one). Only
//! a probe that passed is kept; the daemon writes it through its own journal, `check` through
//! the journal's file without its lock (SQLite's own locking, beside a running daemon), and
//! never creates a journal to do so.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, OptionalExtension};

use super::schema::open_connection;
use super::{Journal, JournalError};
use crate::store::{Capabilities, KeptProbe};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS probes (
    endpoint TEXT NOT NULL,
    bucket TEXT NOT NULL,
    checksum_enforced INTEGER NOT NULL,
    conditional_put INTEGER NOT NULL,
    checksum_answered INTEGER NOT NULL,
    encryption TEXT NOT NULL,
    probed_ms INTEGER NOT NULL,
    PRIMARY KEY (endpoint, bucket)
)";

impl Journal {
    /// The journal at `path` for `check` to read and keep a probe's result in, opened without
    /// the daemon's lock; `None` when there is no journal there yet (`check` creates none: it
    /// may run as another user than the daemon).
    pub fn open_for_probe(path: &Path) -> Result<Option<Journal>, JournalError> {
        if !path.exists() {
            return Ok(None);
        }
        let connection = open_connection(path)?;
        Ok(Some(Journal {
            path: path.to_owned(),
            connection: Arc::new(Mutex::new(connection)),
            writer: None,
            _lock: None,
            unusable: Arc::default(),
        }))
    }

    /// The result kept for `bucket` at `endpoint`, if any.
    pub async fn kept_probe(&self, endpoint: &str, bucket: &str) -> Result<Option<KeptProbe>, JournalError> {
        let (endpoint, bucket) = (endpoint.to_owned(), bucket.to_owned());
        self.with(move |c| {
            let query = c.prepare_cached(
                "SELECT checksum_enforced, conditional_put, checksum_answered, encryption, probed_ms \
                 FROM probes WHERE endpoint = ?1 AND bucket = ?2",
            );
            let mut query = match query {
                Ok(query) => query,
                // Not written by any probe yet (or a journal opened read-only from before it).
                Err(rusqlite::Error::SqliteFailure(_, Some(message)))
                    if message.contains("no such table") =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            query
                .query_row(params![endpoint, bucket], |row| {
                    Ok(KeptProbe {
                        capabilities: Capabilities {
                            checksum_enforced: row.get(0)?,
                            conditional_put: row.get(1)?,
                            checksum_answered: row.get(2)?,
                        },
                        encryption: row.get(3)?,
                        probed_ms: row.get(4)?,
                    })
                })
                .optional()
        })
        .await
    }

    /// Keeps `probe` as the result for `bucket` at `endpoint`, replacing the one before.
    pub async fn keep_probe(
        &self,
        endpoint: &str,
        bucket: &str,
        probe: &KeptProbe,
    ) -> Result<(), JournalError> {
        let (endpoint, bucket, probe) = (endpoint.to_owned(), bucket.to_owned(), probe.clone());
        self.with(move |c| {
            c.execute_batch(CREATE)?;
            c.execute(
                "INSERT INTO probes (endpoint, bucket, checksum_enforced, conditional_put, checksum_answered, encryption, probed_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT(endpoint, bucket) DO UPDATE SET checksum_enforced = excluded.checksum_enforced, \
                 conditional_put = excluded.conditional_put, checksum_answered = excluded.checksum_answered, \
                 encryption = excluded.encryption, probed_ms = excluded.probed_ms",
                params![
                    endpoint,
                    bucket,
                    probe.capabilities.checksum_enforced,
                    probe.capabilities.conditional_put,
                    probe.capabilities.checksum_answered,
                    probe.encryption,
                    probe.probed_ms
                ],
            )
            .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(encryption: &str, probed_ms: i64) -> KeptProbe {
        KeptProbe {
            capabilities: Capabilities {
                checksum_enforced: true,
                conditional_put: true,
                checksum_answered: false,
            },
            encryption: encryption.to_owned(),
            probed_ms,
        }
    }

    /// A result is kept per endpoint and bucket, a later one replaces it, and `check`'s
    /// lockless handle beside a daemon's journal reads what the daemon kept.
    #[tokio::test]
    async fn a_probe_is_kept_per_endpoint_and_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        assert!(Journal::open_for_probe(&path).unwrap().is_none(), "check creates no journal");
        let journal = Journal::open(&path).unwrap();
        assert_eq!(journal.kept_probe("http://minio:9000", "b").await.unwrap(), None);

        journal.keep_probe("http://minio:9000", "b", &kept("", 1)).await.unwrap();
        journal.keep_probe("http://minio:9000", "b", &kept("AES256", 2)).await.unwrap();
        journal.keep_probe("http://other:9000", "b", &kept("", 3)).await.unwrap();
        assert_eq!(journal.kept_probe("http://minio:9000", "b").await.unwrap(), Some(kept("AES256", 2)));
        assert_eq!(journal.kept_probe("http://minio:9000", "c").await.unwrap(), None);

        let beside = Journal::open_for_probe(&path).unwrap().expect("the journal exists");
        assert_eq!(beside.kept_probe("http://other:9000", "b").await.unwrap(), Some(kept("", 3)));
        beside.keep_probe("http://other:9000", "b", &kept("", 4)).await.unwrap();
        assert_eq!(journal.kept_probe("http://other:9000", "b").await.unwrap(), Some(kept("", 4)));

        // A journal read-only from before the table: no kept result, not an error.
        let old = dir.path().join("old.sqlite3");
        drop(Journal::open(&old).unwrap());
        let read_only = Journal::open_read_only(&old).unwrap();
        assert_eq!(read_only.kept_probe("http://minio:9000", "b").await.unwrap(), None);
    }
}
