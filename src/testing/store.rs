//! `FakeStore`: a bucket in memory behind the `ObjectStore` trait; `FakeStore::versioned` keeps
//! what a delete hides, as a bucket with versioning does.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{answer, lock, Faults, LostAnswer};
use crate::hash::Sha256Digest;
use crate::object_name::ObjectName;
use crate::store::{
    BucketSetup, Capabilities, Deleted, KeptProbe, ObjectEntry, ObjectInfo, ObjectPages, ObjectPolicy,
    ObjectStore, ObjectVersion, Probe, ProbeWrites, StoreError, StoreErrorKind, Stored, UploadRequest,
    Versioning,
};

/// An `ObjectStore` operation, for scripting faults and counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    CheckBucket,
    Stat,
    Upload,
    Probe,
    Delete,
    List,
    PresignGet,
    Get,
    Sha256Of,
    ListPages,
    ObjectVersions,
}

/// One stored object: its bytes and the checksum the server reports for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FakeObject {
    bytes: Bytes,
    checksum: String,
    meta_sha256: Option<String>,
    /// The encryption it was stored with (`x-amz-server-side-encryption`).
    encryption: Option<String>,
}

/// A bucket in memory.
pub struct FakeStore {
    objects: Mutex<BTreeMap<String, FakeObject>>,
    faults: Faults<StoreOp, StoreErrorKind>,
    calls: Mutex<Vec<StoreOp>>,
    capabilities: Capabilities,
    policy: ObjectPolicy,
    /// Versions a delete hid, by name, oldest first: `Some` for a bucket that keeps versions.
    hidden: Option<Mutex<BTreeMap<String, Vec<Bytes>>>>,
}

impl Default for FakeStore {
    fn default() -> Self {
        FakeStore::new()
    }
}

impl FakeStore {
    /// A store that behaves like MinIO: it enforces and echoes the checksum and honours
    /// `If-None-Match: *`.
    pub fn new() -> FakeStore {
        FakeStore::with_capabilities(Capabilities {
            checksum_enforced: true,
            conditional_put: true,
            checksum_answered: true,
        })
    }

    /// A store whose probe reports `capabilities`; one with `checksum_answered: false` answers
    /// a PUT without the checksum, as garage does.
    pub fn with_capabilities(capabilities: Capabilities) -> FakeStore {
        FakeStore {
            objects: Mutex::new(BTreeMap::new()),
            faults: Faults::new(),
            calls: Mutex::new(Vec::new()),
            capabilities,
            policy: ObjectPolicy::default(),
            hidden: None,
        }
    }

    /// This store asking `policy` of every upload (as `minio.*` would), stored as asked.
    pub fn with_policy(self, policy: ObjectPolicy) -> FakeStore {
        FakeStore { policy, ..self }
    }

    /// This store on a bucket that keeps versions: a delete hides the object behind a delete
    /// marker and keeps its bytes (`hidden_versions`).
    pub fn versioned(self) -> FakeStore {
        FakeStore { hidden: Some(Mutex::new(BTreeMap::new())), ..self }
    }

    /// The versions of `name` a delete hid, oldest first.
    pub fn hidden_versions(&self, name: &str) -> Vec<Bytes> {
        self.hidden.as_ref().and_then(|hidden| lock(hidden).get(name).cloned()).unwrap_or_default()
    }

    /// The next `times` calls of `op` fail with `kind`, doing nothing.
    pub fn fail_next(&self, op: StoreOp, times: u32, kind: StoreErrorKind) {
        self.faults.add(op, times, kind, false);
    }

    /// The next `times` calls of `op` (an upload or a delete) take effect, then fail with
    /// `kind`: the server did it and the answer never arrived.
    pub fn lose_next_answer(&self, op: StoreOp, times: u32, kind: StoreErrorKind) {
        assert!(
            matches!(op, StoreOp::Upload | StoreOp::Delete),
            "{op:?} writes nothing to lose an answer of"
        );
        self.faults.add(op, times, kind, true);
    }

    /// Stores `bytes` under `name` as a single PUT would, replacing whatever was there.
    pub fn put_object(&self, name: &str, bytes: impl Into<Bytes>) {
        let bytes = bytes.into();
        let digest = Sha256Digest::of_bytes(&bytes);
        let object = FakeObject {
            bytes,
            checksum: digest.to_base64(),
            meta_sha256: Some(digest.to_hex()),
            encryption: None,
        };
        lock(&self.objects).insert(name.to_owned(), object);
    }

    pub fn remove_object(&self, name: &str) {
        lock(&self.objects).remove(name);
    }

    /// The bytes stored under `name`.
    pub fn object(&self, name: &str) -> Option<Bytes> {
        lock(&self.objects).get(name).map(|object| object.bytes.clone())
    }

    /// Every object name, in key order.
    pub fn names(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }

    /// How many calls of `op` were made.
    pub fn calls(&self, op: StoreOp) -> usize {
        lock(&self.calls).iter().filter(|call| **call == op).count()
    }

    /// Counts the call and fails it if a fault is scripted for it; a lost answer is returned
    /// for the call to end with once it has taken effect.
    fn enter(&self, op: StoreOp, name: &str) -> Result<LostAnswer<StoreError>, StoreError> {
        lock(&self.calls).push(op);
        self.faults.meet(op, |kind| StoreError { kind, message: format!("{name}: scripted {kind:?} fault") })
    }

    /// What a server that received `request` stores and answers.
    fn put(&self, name: &ObjectName, request: UploadRequest<'_>) -> Result<Stored, StoreError> {
        let bytes = std::fs::read(request.path).map_err(|e| StoreError {
            kind: if e.kind() == std::io::ErrorKind::NotFound {
                StoreErrorKind::LocalFileMissing
            } else {
                StoreErrorKind::LocalFile
            },
            message: format!("{}: {e}", request.path.display()),
        })?;
        // The server computes the SHA-256 of what it received and refuses a mismatch.
        if Sha256Digest::of_bytes(&bytes) != request.hash.sha256 {
            return Err(StoreError {
                kind: StoreErrorKind::ChecksumMismatch,
                message: format!("{name}: the body does not match x-amz-checksum-sha256"),
            });
        }
        let single_put =
            request.hash.identity.size <= request.multipart_threshold || request.hash.part_digests.is_empty();
        let mut objects = lock(&self.objects);
        if request.if_absent && objects.contains_key(name.as_str()) {
            return Err(StoreError {
                kind: StoreErrorKind::AlreadyExists,
                message: format!("{name}: 412 Precondition Failed"),
            });
        }
        let checksum = request.hash.expected_s3_checksum();
        let object = FakeObject {
            bytes: Bytes::from(bytes),
            checksum: checksum.clone(),
            meta_sha256: Some(request.hash.sha256.to_hex()),
            encryption: self.policy.encryption.as_ref().map(|e| e.algorithm().to_owned()),
        };
        objects.insert(name.as_str().to_owned(), object);
        let answered = single_put && self.capabilities.checksum_answered;
        Ok(Stored { checksum_sha256: answered.then_some(checksum) })
    }

    fn missing(name: &str) -> StoreError {
        StoreError { kind: StoreErrorKind::NotFound, message: format!("{name}: NoSuchKey") }
    }

    fn entries(&self, prefix: &str) -> Vec<ObjectEntry> {
        lock(&self.objects)
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, object)| ObjectEntry {
                name: name.clone(),
                size: object.bytes.len() as u64,
                modified_unix_s: None,
            })
            .collect()
    }
}

#[async_trait]
impl ObjectStore for FakeStore {
    async fn check_bucket(&self) -> Result<(), StoreError> {
        self.enter(StoreOp::CheckBucket, "bucket").map(drop)
    }

    async fn stat(&self, name: &ObjectName) -> Result<Option<ObjectInfo>, StoreError> {
        self.enter(StoreOp::Stat, name.as_str())?;
        Ok(lock(&self.objects).get(name.as_str()).map(|object| ObjectInfo {
            size: object.bytes.len() as u64,
            checksum_sha256: Some(object.checksum.clone()),
            meta_sha256: object.meta_sha256.clone(),
            encryption: object.encryption.clone(),
            kms_key_id: None,
        }))
    }

    async fn upload(&self, name: &ObjectName, request: UploadRequest<'_>) -> Result<Stored, StoreError> {
        let lost = self.enter(StoreOp::Upload, name.as_str())?;
        answer(lost, self.put(name, request))
    }

    async fn bucket_setup(&self) -> Result<BucketSetup, StoreError> {
        let versioning = if self.hidden.is_some() { Versioning::Enabled } else { Versioning::Unversioned };
        Ok(BucketSetup {
            versioning: Some(versioning),
            object_lock: Some(crate::store::ObjectLock::Off),
            default_encryption: Some(None),
            unknown: Vec::new(),
        })
    }

    async fn probe(&self, _bucket: &BucketSetup, _kept: Option<&KeptProbe>) -> Result<Probe, StoreError> {
        self.enter(StoreOp::Probe, "probe")?;
        Ok(Probe { capabilities: self.capabilities, writes: ProbeWrites::ScratchDeleted })
    }

    async fn delete(&self, name: &ObjectName) -> Result<Deleted, StoreError> {
        let lost = self.enter(StoreOp::Delete, name.as_str())?;
        let removed = lock(&self.objects).remove(name.as_str());
        let deleted = match &self.hidden {
            None => Deleted::Removed,
            Some(hidden) => {
                if let Some(object) = removed {
                    lock(hidden).entry(name.as_str().to_owned()).or_default().push(object.bytes);
                }
                Deleted::Marked { marker: None }
            }
        };
        answer(lost, Ok(deleted))
    }

    fn policy(&self) -> &ObjectPolicy {
        &self.policy
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectEntry>, StoreError> {
        self.enter(StoreOp::List, prefix)?;
        Ok(self.entries(prefix))
    }

    async fn presign_get(&self, name: &ObjectName, expiry: Duration) -> Result<String, StoreError> {
        self.enter(StoreOp::PresignGet, name.as_str())?;
        Ok(format!("http://fake-store/{name}?expires={}", expiry.as_secs()))
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, StoreError> {
        self.enter(StoreOp::Get, name.as_str())?;
        self.object(name.as_str()).ok_or_else(|| FakeStore::missing(name.as_str()))
    }

    async fn sha256_of(&self, name: &ObjectName) -> Result<(u64, Sha256Digest), StoreError> {
        self.enter(StoreOp::Sha256Of, name.as_str())?;
        let bytes = self.object(name.as_str()).ok_or_else(|| FakeStore::missing(name.as_str()))?;
        Ok((bytes.len() as u64, Sha256Digest::of_bytes(&bytes)))
    }

    async fn list_pages(&self, prefix: &str, page_size: u16) -> Result<ObjectPages, StoreError> {
        self.enter(StoreOp::ListPages, prefix)?;
        let pages: Vec<Result<Vec<ObjectEntry>, StoreError>> = self
            .entries(prefix)
            .chunks(usize::from(page_size.max(1)))
            .map(|page| Ok(page.to_vec()))
            .collect();
        Ok(Box::pin(futures_util::stream::iter(pages)))
    }

    /// The current objects and the versions a delete hid (newest first, behind a delete
    /// marker when no current object stands); the fake keeps no times.
    async fn object_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, StoreError> {
        self.enter(StoreOp::ObjectVersions, prefix)?;
        let current: BTreeMap<String, u64> =
            self.entries(prefix).into_iter().map(|entry| (entry.name, entry.size)).collect();
        let hidden: BTreeMap<String, Vec<Bytes>> = match &self.hidden {
            Some(hidden) => lock(hidden)
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
            None => BTreeMap::new(),
        };
        let names: std::collections::BTreeSet<&String> = current.keys().chain(hidden.keys()).collect();
        let version = |name: &str, size, delete_marker, latest| ObjectVersion {
            name: name.to_owned(),
            version_id: None,
            delete_marker,
            latest,
            size,
            modified_unix_s: None,
        };
        let mut versions = Vec::new();
        for name in names {
            match current.get(name) {
                Some(size) => versions.push(version(name, *size, false, true)),
                None => versions.push(version(name, 0, true, true)),
            }
            for bytes in hidden.get(name).into_iter().flatten().rev() {
                versions.push(version(name, bytes.len() as u64, false, false));
            }
        }
        Ok(versions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A conditional PUT on a taken name stores nothing, as MinIO's 412 does.
    #[tokio::test]
    async fn a_conditional_put_never_replaces_an_object() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("a.pdf");
        std::fs::write(&path, b"ours").unwrap();
        let hash = crate::hash::hash_file(&path, None).unwrap();
        let store = FakeStore::new();
        store.put_object("o", &b"theirs"[..]);
        let name = ObjectName::from_stored("o".to_owned());
        let request = |if_absent| UploadRequest {
            path: &path,
            hash: &hash,
            content_type: "application/pdf",
            multipart_threshold: 1 << 20,
            part_size: 1 << 20,
            if_absent,
        };
        let refused = store.upload(&name, request(true)).await.unwrap_err();
        assert_eq!(refused.kind, StoreErrorKind::AlreadyExists);
        assert_eq!(store.object("o").as_deref(), Some(&b"theirs"[..]));
        let stored = store.upload(&name, request(false)).await.unwrap();
        assert_eq!(stored.checksum_sha256, Some(hash.sha256.to_base64()));
        assert_eq!(store.object("o").as_deref(), Some(&b"ours"[..]));
    }
}
