//! The PUTs that carry file bytes (a small file's single PUT, a large file's UploadPart), signed
//! here with the SHA-256 computed at hash time as SigV4's payload hash.
//!
//! The `minio` SDK hashes every body it sends to sign it, and its signer is private: through
//! it, each uploaded byte was hashed twice, the same SHA-256 both times. `aws-sigv4` signs with
//! a payload hash given to it (`SignableBody::Precomputed`), and the request goes out on the
//! same `reqwest` (version, TLS backend, connection settings) the SDK uses for everything
//! else. The server checks the body against `x-amz-content-sha256` (the signature covers it)
//! and against `x-amz-checksum-sha256`, both ours, so a wrong hash is refused, never stored.
//! Answers are read into the SDK's error types, and their status recorded as the SDK's are
//! (`errors::answered`), so `errors::classify_answer` sorts them the same way as the SDK's own.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::Method;
use minio::s3::error::{Error as MinioError, NetworkError, S3ServerError, ValidationErr};
use minio::s3::http::BaseUrl;
use minio::s3::minio_error_response::{MinioErrorCode, MinioErrorResponse};
use minio::s3::multimap_ext::{Multimap, MultimapExt};
use minio::s3::types::{BucketName, ObjectKey, Region};
use reqwest::header::HeaderMap;

use crate::hash::Sha256Digest;

/// How the PUTs reach the server: the configured CA file, proxy and connect timeout.
pub(super) struct Transport<'a> {
    pub ca_file: Option<&'a std::path::Path>,
    pub proxy: Option<&'a str>,
    pub connect_timeout: Duration,
}

/// Signs and sends PUTs of bytes whose SHA-256 is already known.
pub(super) struct Signer {
    http: reqwest::Client,
    base_url: BaseUrl,
    identity: Identity,
}

/// One PUT of `body` to `key`.
pub(super) struct SignedPut<'a> {
    pub key: &'a ObjectKey,
    /// `partNumber` and `uploadId` for an UploadPart; empty for a whole object.
    pub query: Multimap,
    /// Headers besides those the signature adds (`x-amz-checksum-sha256` among them).
    pub headers: Multimap,
    pub body: Bytes,
    /// The body's SHA-256, as computed when the file was hashed.
    pub sha256: &'a Sha256Digest,
}

impl Signer {
    /// `http` settings are the SDK's own (`MinioClientBuilder::build` in minio 0.4), so that
    /// a PUT travels as the SDK's requests do: same pool sizes, keepalive, no compression, the
    /// same roots (the system's store, webpki's, `ca_file`). Unlike the SDK's, this client is
    /// told its proxy (none unless configured) and a connect timeout directly.
    pub(super) fn new(
        base_url: BaseUrl,
        access_key: &str,
        secret_key: &str,
        transport: &Transport<'_>,
    ) -> Result<Signer, String> {
        let mut http = reqwest::Client::builder()
            .no_gzip()
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(transport.connect_timeout)
            .user_agent(concat!("confronta-sync/", env!("CARGO_PKG_VERSION")));
        http = match transport.proxy {
            Some(proxy) => http.proxy(reqwest::Proxy::all(proxy).map_err(|e| format!("minio.proxy: {e}"))?),
            None => http.no_proxy(),
        };
        if let Some(ca_file) = transport.ca_file {
            let failed = |e: &dyn std::fmt::Display| format!("minio.ca_file {}: {e}", ca_file.display());
            let pem = std::fs::read(ca_file).map_err(|e| failed(&e))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| failed(&e))?;
            if certificates.is_empty() {
                return Err(failed(&"no PEM certificate in it"));
            }
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http.build().map_err(|e| e.to_string())?;
        let credentials =
            aws_credential_types::Credentials::new(access_key, secret_key, None, None, "minio.access_key");
        Ok(Signer { http, base_url, identity: credentials.into() })
    }

    /// Sends `put` to `bucket` and returns the answer's headers, or the error the SDK would
    /// have returned for the same answer.
    pub(super) async fn put(
        &self,
        bucket: &BucketName,
        region: &Region,
        put: SignedPut<'_>,
    ) -> Result<HeaderMap, MinioError> {
        let url = self.base_url.build_url(&Method::PUT, region, &put.query, Some(bucket), Some(put.key))?;
        let address = url.to_string();
        let mut headers = put.headers;
        // The SDK's `Host` (with the port as configured), content type and length.
        headers.add("host", url.host_header_value());
        if !headers.contains_key("content-type") {
            headers.add("content-type", "application/octet-stream");
        }
        headers.add("content-length", put.body.len().to_string());
        let signature = self.sign(&address, region, &headers, put.sha256.to_hex())?;

        let mut request = self.http.put(&address);
        for (name, values) in headers.iter_all() {
            for value in values {
                request = request.header(name, value);
            }
        }
        for (name, value) in signature {
            request = request.header(name, value);
        }
        let answer = request.body(put.body).send().await.map_err(ValidationErr::from)?;
        super::errors::record_status(answer.status().as_u16());
        if answer.status().is_success() {
            return Ok(answer.headers().clone());
        }
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        let body = answer.bytes().await.map_err(ValidationErr::from)?;
        Err(refusal(status, headers, body, &url.path, bucket, put.key))
    }

    /// The headers that sign a PUT to `address` carrying `headers`: `x-amz-date`,
    /// `x-amz-content-sha256` (`payload_sha256_hex`) and `authorization`.
    fn sign(
        &self,
        address: &str,
        region: &Region,
        headers: &Multimap,
        payload_sha256_hex: String,
    ) -> Result<Vec<(&'static str, String)>, MinioError> {
        let failed = |e: &dyn std::fmt::Display| {
            MinioError::Validation(ValidationErr::StrError {
                message: format!("signing the PUT to {address}: {e}"),
                source: None,
            })
        };
        // S3's variant of SigV4: the path is signed as sent (encoded once, not normalised)
        // and the payload hash is sent as `x-amz-content-sha256`.
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(region.as_str())
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let pairs =
            headers.iter_all().flat_map(|(name, values)| values.iter().map(|v| (name.as_str(), v.as_str())));
        let request =
            SignableRequest::new("PUT", address, pairs, SignableBody::Precomputed(payload_sha256_hex))
                .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
        let (signature, _) = instructions.into_parts();
        Ok(signature.into_iter().map(|header| (header.name(), header.value().to_owned())).collect())
    }
}

/// The SDK's error for a non-2xx answer to a PUT (minio 0.4's `create_minio_error_response`
/// for a PUT that is not retried): an S3 XML error when there is a body, a code chosen by the
/// status when there is none.
fn refusal(
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    resource: &str,
    bucket: &BucketName,
    key: &ObjectKey,
) -> MinioError {
    if !body.is_empty() {
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let invalid = |message: String, content_type: &str| {
            MinioError::S3Server(S3ServerError::InvalidServerResponse {
                message,
                http_status_code: status,
                content_type: content_type.to_owned(),
            })
        };
        return match content_type {
            None => invalid("missing Content-Type header".into(), ""),
            Some(t) if t.to_lowercase().contains("application/xml") => {
                match MinioErrorResponse::new_from_body(body, headers) {
                    Ok(response) => MinioError::S3Server(S3ServerError::S3Error(Box::new(response))),
                    Err(e) => e,
                }
            }
            Some(t) => invalid(format!("expected content-type 'application/xml', but got {t}"), t),
        };
    }
    let (code, message) = match status {
        301 => (MinioErrorCode::PermanentRedirect, "Moved Permanently"),
        307 => (MinioErrorCode::Redirect, "Temporary redirect"),
        400 => (MinioErrorCode::BadRequest, "Bad request"),
        403 => (MinioErrorCode::AccessDenied, "Access denied"),
        404 => (MinioErrorCode::NoSuchKey, "Object does not exist"),
        405 | 501 => {
            (MinioErrorCode::MethodNotAllowed, "The specified method is not allowed against this resource")
        }
        409 => (MinioErrorCode::NoSuchBucket, "Bucket does not exist"),
        _ => return MinioError::Network(NetworkError::ServerError(status)),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (request_id, host_id) = (header("x-amz-request-id"), header("x-amz-id-2"));
    MinioError::S3Server(S3ServerError::S3Error(Box::new(MinioErrorResponse::new(
        headers,
        code,
        Some(message.to_owned()),
        resource.to_owned(),
        request_id,
        host_id,
        Some(bucket.clone()),
        Some(key.clone()),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small upload is verified by the PUT's 200 alone because the server cannot have
    /// skipped `x-amz-checksum-sha256`: it is a signed header, so a request that lost it on
    /// the way fails the signature. This holds only while the signature covers it. The same
    /// goes for the encryption and retention asked for (issue 29): a proxy cannot strip them.
    #[test]
    fn the_checksum_header_is_signed() {
        let transport = Transport { ca_file: None, proxy: None, connect_timeout: Duration::from_secs(10) };
        let signer =
            Signer::new("http://127.0.0.1:9".parse().unwrap(), "access", "secret", &transport).unwrap();
        let mut headers = Multimap::new();
        headers.add("host", "127.0.0.1:9");
        headers.add("x-amz-checksum-sha256", Sha256Digest::of_bytes(b"x").to_base64());
        headers.add("if-none-match", "*");
        headers.add("x-amz-server-side-encryption", "AES256");
        headers.add("x-amz-object-lock-mode", "COMPLIANCE");
        headers.add("x-amz-object-lock-retain-until-date", "2036-01-01T00:00:00Z");
        let payload = Sha256Digest::of_bytes(b"x").to_hex();
        let signature = signer
            .sign("http://127.0.0.1:9/bucket/key", &Region::new("us-east-1").unwrap(), &headers, payload)
            .unwrap();
        let authorization = signature
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.clone())
            .expect("an authorization header");
        let signed = authorization.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
        let signed: Vec<&str> = signed.split(';').collect();
        for header in [
            "host",
            "x-amz-checksum-sha256",
            "x-amz-content-sha256",
            "if-none-match",
            "x-amz-server-side-encryption",
            "x-amz-object-lock-mode",
            "x-amz-object-lock-retain-until-date",
        ] {
            assert!(signed.contains(&header), "{header} is not signed: {authorization}");
        }
    }
}
