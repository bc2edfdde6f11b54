//! Buckets of a test's own, set up as the shared one is not (versioning, object lock with a
//! default retention, default encryption), made through the S3 API of the test server and
//! emptied afterwards as far as their retention allows.

use futures_util::StreamExt;
use minio::s3::builders::{ObjectToDelete, VersioningStatus};
use minio::s3::creds::StaticProvider;
use minio::s3::http::BaseUrl;
use minio::s3::response_traits::HasS3Fields;
use minio::s3::types::{ObjectLockConfig, RetentionMode, S3Api, ToStream, VersionId};
use minio::s3::{MinioClient, MinioClientBuilder};

use super::{s3_env, unique, S3Env};

/// How a test's bucket is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// Versioning enabled (object lock enables it too).
    pub versioning: bool,
    /// Object lock, with this default retention (mode, days) when given.
    pub object_lock: Option<Option<(Lock, i32)>>,
    /// The bucket's default encryption is SSE-S3 (AES256).
    pub default_encryption: bool,
}

/// Object-lock modes, as the tests name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Compliance,
    Governance,
}

/// One version (or delete marker) as a versioned listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    pub delete_marker: bool,
    pub latest: bool,
}

/// What a HEAD of one object (or version) says about its encryption and retention.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// `x-amz-server-side-encryption`.
    pub encryption: Option<String>,
    /// `x-amz-object-lock-mode`.
    pub lock_mode: Option<String>,
    /// `x-amz-object-lock-retain-until-date`, as the server wrote it.
    pub retain_until: Option<String>,
}

/// A bucket made for one test; `cleanup` empties and removes what it can.
pub struct TestBucket {
    pub name: String,
    client: MinioClient,
}

impl TestBucket {
    /// Creates a bucket named after `label` with `setup`.
    pub async fn create(label: &str, setup: Setup) -> TestBucket {
        let client = client();
        // Bucket names: lowercase, digits and dashes, at most 63 characters.
        let name = unique(label).replace('_', "-").to_ascii_lowercase();
        client
            .create_bucket(name.as_str())
            .unwrap()
            .object_lock(setup.object_lock.is_some())
            .build()
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating bucket {name}: {e}"));
        if setup.versioning && setup.object_lock.is_none() {
            client
                .put_bucket_versioning(name.as_str(), VersioningStatus::Enabled)
                .unwrap()
                .build()
                .send()
                .await
                .unwrap_or_else(|e| panic!("enabling versioning on {name}: {e}"));
        }
        if let Some(Some((mode, days))) = setup.object_lock {
            let mode = match mode {
                Lock::Compliance => RetentionMode::COMPLIANCE,
                Lock::Governance => RetentionMode::GOVERNANCE,
            };
            let config = ObjectLockConfig::new(mode, Some(days), None).unwrap();
            client
                .put_object_lock_config(name.as_str())
                .unwrap()
                .config(config)
                .build()
                .send()
                .await
                .unwrap_or_else(|e| panic!("setting the default retention of {name}: {e}"));
        }
        let bucket = TestBucket { name, client };
        if setup.default_encryption {
            // minio 0.4's `put_bucket_encryption` sends its PUT as a GET, so it is sent here.
            let body = format!("<ServerSideEncryptionConfiguration>{}</ServerSideEncryptionConfiguration>",
                "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>");
            bucket.put_configuration("encryption", body).await;
        }
        bucket
    }

    /// A PUT of a bucket configuration (`?encryption`, `?versioning`, ...), signed with SigV4.
    async fn put_configuration(&self, subresource: &str, body: String) {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let env = s3_env();
        let address = format!("{}/{}?{subresource}=", env.endpoint.trim_end_matches('/'), self.name);
        let host = address.split('/').nth(2).unwrap().to_owned();
        let payload = confronta_sync::hash::Sha256Digest::of_bytes(body.as_bytes()).to_hex();
        let headers = [("host", host.as_str()), ("x-amz-content-sha256", payload.as_str())];
        let identity =
            aws_credential_types::Credentials::new(&env.access_key, &env.secret_key, None, None, "test")
                .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let request = SignableRequest::new(
            "PUT",
            &address,
            headers.into_iter(),
            SignableBody::Precomputed(payload.clone()),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let (signature, _) = instructions.into_parts();
        let mut put = reqwest::Client::new().put(&address).body(body);
        for (name, value) in headers.into_iter().skip(1) {
            put = put.header(name, value);
        }
        for header in signature {
            put = put.header(header.name(), header.value());
        }
        let answer = put.send().await.unwrap_or_else(|e| panic!("PUT {address}: {e}"));
        let status = answer.status();
        assert!(status.is_success(), "PUT {address}: {status} {}", answer.text().await.unwrap_or_default());
    }

    /// The test server's settings, naming this bucket.
    pub fn env(&self) -> S3Env {
        S3Env { bucket: self.name.clone(), ..s3_env() }
    }

    /// Every version and delete marker under `prefix`, in the server's order.
    pub async fn versions(&self, prefix: &str) -> Vec<Version> {
        let mut pages = self
            .client
            .list_objects(self.name.as_str())
            .unwrap()
            .recursive(true)
            .include_versions(true)
            .prefix(Some(prefix.to_owned()))
            .build()
            .to_stream()
            .await;
        let mut versions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("listing the versions in {}: {e}", self.name));
            versions.extend(page.contents.into_iter().filter(|entry| !entry.is_prefix).map(|entry| {
                Version {
                    key: entry.name,
                    version_id: entry.version_id.unwrap_or_default(),
                    delete_marker: entry.is_delete_marker,
                    latest: entry.is_latest,
                }
            }));
        }
        versions
    }

    /// Stores `bytes` under `key` as another client would (no checksum, no encryption asked).
    pub async fn put(&self, key: &str, bytes: &[u8]) {
        self.client
            .put_object_content(self.name.as_str(), key, bytes.to_vec())
            .unwrap()
            .build()
            .send()
            .await
            .unwrap_or_else(|e| panic!("putting {key} in {}: {e}", self.name));
    }

    /// A HEAD of `key` (its `version`, or the current one); `None` when there is none.
    pub async fn head(&self, key: &str, version: Option<&str>) -> Option<Head> {
        let version = version.map(|v| VersionId::new(v).unwrap());
        let answer = self
            .client
            .stat_object(self.name.as_str(), key)
            .unwrap()
            .version_id(version)
            .build()
            .send()
            .await;
        let answer = answer.ok()?;
        let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Some(Head {
            encryption: header("x-amz-server-side-encryption"),
            lock_mode: header("x-amz-object-lock-mode"),
            retain_until: header("x-amz-object-lock-retain-until-date"),
        })
    }

    /// Deletes every version it may (bypassing a GOVERNANCE retention; one in COMPLIANCE mode
    /// stays until it ends, and the test server's data folder goes with the run), then the
    /// bucket if that emptied it.
    pub async fn cleanup(&self) {
        for version in self.versions("").await {
            let Ok(id) = VersionId::new(version.version_id) else { continue };
            let Ok(target) = ObjectToDelete::try_from((version.key.as_str(), id)) else { continue };
            if let Ok(request) = self.client.delete_object(self.name.as_str(), target) {
                let _ = request.bypass_governance_mode(true).build().send().await;
            }
        }
        if let Ok(request) = self.client.delete_bucket(self.name.as_str()) {
            let _ = request.build().send().await;
        }
    }
}

/// An SDK client on the test server.
fn client() -> MinioClient {
    let env = s3_env();
    let base_url: BaseUrl = env.endpoint.parse().unwrap();
    MinioClientBuilder::new(base_url)
        .provider(Some(StaticProvider::new(&env.access_key, &env.secret_key, None)))
        .skip_region_lookup(true)
        .build()
        .unwrap()
}
