//! How the SDK's errors map onto `StoreErrorKind`: what is an outage, a refusal, a checksum
//! mismatch or a taken name.
//!
//! The HTTP status decides first: every 5xx, 429 and 408 is "try again", whatever the body
//! says (MinIO answers lost quorum with `SlowDownWrite`/`SlowDownRead` 503 and full drives with
//! `XMinioStorageFull` 507; a proxy answers 429, 408 or 502 with an HTML page). Only within 4xx
//! does the error code tell a refusal from a missing bucket, a taken name or a clock skew. The
//! SDK keeps no status in an XML error it parsed, so every request runs inside `answered`,
//! which records the status of the last answer in a task-local (`StatusHook` for the SDK's
//! requests, `signed` for ours) for the classification to read.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use minio::s3::error::{Error as MinioError, NetworkError, S3ServerError, ValidationErr};
use minio::s3::types::ObjectKey;

use crate::store::{StoreError, StoreErrorKind};

tokio::task_local! {
    /// The HTTP status of the last answer the current request got (0 before any).
    static ANSWERED: Cell<u16>;
}

/// Says that the current request was answered with `status`; a no-op outside `answered`.
pub(super) fn record_status(status: u16) {
    let _ = ANSWERED.try_with(|answered| answered.set(status));
}

/// Runs `request`, returning its result and the status of the last answer it got, if any.
pub(super) async fn answered<T>(request: impl Future<Output = T>) -> (T, Option<u16>) {
    ANSWERED
        .scope(Cell::new(0), async {
            let result = request.await;
            let status = ANSWERED.with(|answered| answered.get());
            (result, (status != 0).then_some(status))
        })
        .await
}

/// A stream of the SDK's (a listing's pages), each item with the status of the answer that
/// brought it. The status is carried from one poll to the next: an answer's body is read over
/// several polls, after its status was recorded.
pub(super) struct AnsweredStream<S> {
    inner: S,
    last: u16,
}

impl<S> AnsweredStream<S> {
    pub(super) fn new(inner: S) -> Self {
        AnsweredStream { inner, last: 0 }
    }
}

impl<S: Stream + Unpin> Stream for AnsweredStream<S> {
    type Item = (S::Item, Option<u16>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let (polled, last) = ANSWERED.sync_scope(Cell::new(this.last), || {
            let polled = Pin::new(&mut this.inner).poll_next(cx);
            (polled, ANSWERED.with(|answered| answered.get()))
        });
        this.last = last;
        polled.map(|item| item.map(|item| (item, (last != 0).then_some(last))))
    }
}

/// Records the status of every answer the SDK gets (see `answered`).
#[derive(Debug)]
pub(super) struct StatusHook;

#[async_trait::async_trait]
impl minio::s3::client::RequestHooks for StatusHook {
    fn name(&self) -> &'static str {
        "confronta-sync answer status"
    }

    async fn after_execute(
        &self,
        _method: &http::Method,
        _url: &minio::s3::http::Url,
        _region: &str,
        _headers: &minio::s3::multimap_ext::Multimap,
        _query_params: &minio::s3::multimap_ext::Multimap,
        _bucket: Option<&minio::s3::types::BucketName>,
        _object: Option<&ObjectKey>,
        response: &Result<reqwest::Response, reqwest::Error>,
        _extensions: &mut http::Extensions,
    ) {
        if let Ok(response) = response {
            record_status(response.status().as_u16());
        }
    }
}

pub(super) fn map_validation(key: &ObjectKey, e: ValidationErr) -> StoreError {
    classify_minio(&format!("object {key}"), MinioError::Validation(e))
}

/// Maps an SDK error onto our kinds, naming `what` (the object or bucket) in the message, when
/// the answer's status is not known.
pub(super) fn classify_minio(what: &str, error: MinioError) -> StoreError {
    classify_answer(what, error, None)
}

/// Maps an SDK error onto our kinds, naming `what` (the object or bucket) in the message;
/// `status` is the HTTP status of the answer it came from, where `answered` saw one.
pub(super) fn classify_answer(what: &str, error: MinioError, status: Option<u16>) -> StoreError {
    let (kind, detail) = match &error {
        MinioError::Network(NetworkError::ServerError(status)) => {
            (kind_of_answer(Some(*status), "", ""), format!("server answered HTTP {status}"))
        }
        MinioError::Network(NetworkError::ReqwestError(e)) => {
            (StoreErrorKind::Unavailable, describe_reqwest(e))
        }
        MinioError::Validation(ValidationErr::HttpError(e)) => {
            (StoreErrorKind::Unavailable, describe_reqwest(e))
        }
        MinioError::S3Server(S3ServerError::S3Error(response)) => {
            // A bodiless answer (a HEAD's) carries MinIO's code in a header, if anything.
            let header_code = response.headers().get("x-minio-error-code").and_then(|v| v.to_str().ok());
            let code = header_code.map_or_else(|| response.code().to_string(), str::to_owned);
            let code = spelled_as_sent(&code).unwrap_or(&code).to_owned();
            let message = response.message().clone().unwrap_or_default();
            let shown = match status {
                Some(status) => format!("HTTP {status} {code}: {message}"),
                None => format!("{code}: {message}"),
            };
            (kind_of_answer(status, &code, &message), shown)
        }
        MinioError::S3Server(S3ServerError::HttpError(status, body))
        | MinioError::S3Server(S3ServerError::InvalidServerResponse {
            http_status_code: status,
            message: body,
            ..
        }) => (kind_of_answer(Some(*status), "", body), format!("HTTP {status}: {}", excerpt(body))),
        MinioError::DriveIo(e) => (StoreErrorKind::LocalFile, e.to_string()),
        MinioError::Validation(e) => (StoreErrorKind::Refused, e.to_string()),
    };
    StoreError::new(kind, format!("{what}: {detail}"))
}

/// The kind of an error answer: by its status where known (5xx, 429 and 408 are "try again"
/// whatever the body says), by its code within 4xx or where the status is not known.
fn kind_of_answer(status: Option<u16>, code: &str, message: &str) -> StoreErrorKind {
    match status {
        Some(500..=599 | 429 | 408) => StoreErrorKind::Unavailable,
        Some(412) => StoreErrorKind::AlreadyExists,
        Some(_) => classify_s3_code(code, message),
        None => match classify_s3_code(code, message) {
            StoreErrorKind::Refused if is_server_side_code(code) => StoreErrorKind::Unavailable,
            kind => kind,
        },
    }
}

/// The codes the daemon handles, as S3 and MinIO spell them. The SDK lowercases the codes it
/// does not know (`SlowDownWrite` arrives as `slowdownwrite`); the log and the journal show
/// them as the server sent them, so that an operator who searches for MinIO's code finds it.
const CODES_AS_SENT: &[&str] = &[
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "SlowDownWrite",
    "SlowDownRead",
    "XMinioStorageFull",
    "XMinioServerNotInitialized",
    "XMinioReadQuorum",
    "XMinioWriteQuorum",
    "XMinioBackendBusy",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "NoSuchBucket",
    "NoSuchKey",
    "PreconditionFailed",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "BadDigest",
    "InvalidDigest",
    "XAmzContentChecksumMismatch",
    "XAmzContentSHA256Mismatch",
    "InvalidChecksum",
];

/// `code` as the server spelled it, when it is one the daemon knows.
fn spelled_as_sent(code: &str) -> Option<&'static str> {
    CODES_AS_SENT.iter().copied().find(|known| known.eq_ignore_ascii_case(code))
}

/// Codes S3 and MinIO send only with a 5xx status: what says "try again" when the status
/// itself was not seen. Compared lowercased, as `classify_s3_code` explains.
fn is_server_side_code(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    matches!(
        code.as_str(),
        "internalerror"
            | "serviceunavailable"
            | "slowdown"
            | "slowdownwrite"
            | "slowdownread"
            | "xminiostoragefull"
            | "xminioservernotinitialized"
            | "xminioreadquorum"
            | "xminiowritequorum"
            | "xminiobackendbusy"
            | "requesttimeout"
    ) || ["http 5", "http 429", "http 408"].iter().any(|prefix| code.starts_with(prefix))
}

/// The kind of an S3 error response by its code (within 4xx, or where the status is not known).
/// Compared lowercased: the SDK keeps the case of the few codes it knows and lowercases every
/// other one (`InternalError` arrives as `internalerror`), which once made a server's "try
/// again" look like a refusal.
fn classify_s3_code(code: &str, message: &str) -> StoreErrorKind {
    let code = code.to_ascii_lowercase();
    match code.as_str() {
        "nosuchbucket" => StoreErrorKind::NoSuchBucket,
        // The SDK also gives a HEAD's bodiless 404 this code.
        "nosuchkey" => StoreErrorKind::NotFound,
        // The answer to `If-None-Match: *` on a key that exists (MinIO, SeaweedFS, AWS).
        "preconditionfailed" | "http 412" => StoreErrorKind::AlreadyExists,
        "accessdenied" | "invalidaccesskeyid" | "signaturedoesnotmatch" => StoreErrorKind::AccessDenied,
        "baddigest"
        | "invaliddigest"
        | "xamzcontentchecksummismatch"
        | "xamzcontentsha256mismatch"
        | "invalidchecksum" => StoreErrorKind::ChecksumMismatch,
        // A clock that drifted (NTP brings it back) and S3's 400 for a body sent too slowly.
        "requesttimetooskewed" | "requesttimeout" => StoreErrorKind::Unavailable,
        _ if message.to_ascii_lowercase().contains("checksum") => StoreErrorKind::ChecksumMismatch,
        _ => StoreErrorKind::Refused,
    }
}

/// The start of an answer's body, for the message: a proxy's error page can be long.
fn excerpt(body: &str) -> &str {
    const SHOWN: usize = 200;
    match body.char_indices().nth(SHOWN) {
        Some((at, _)) => &body[..at],
        None => body,
    }
}

/// An error with its source chain, so "error sending request" says "connection refused".
fn describe_reqwest(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: garage answered a PUT with `ServiceUnavailable` ("Could not reach quorum",
    /// its metadata database briefly locked) and the file was kept as refused, because the SDK
    /// hands unknown codes over lowercased.
    #[test]
    fn server_side_try_again_codes_are_transient_whatever_their_case() {
        use minio::s3::minio_error_response::{MinioErrorCode, MinioErrorResponse};
        use std::str::FromStr;
        let kind_of = |code: &str| {
            let response = MinioErrorResponse::new(
                Default::default(),
                MinioErrorCode::from_str(code).unwrap(),
                Some("Internal error: Could not reach quorum of 1".into()),
                String::new(),
                String::new(),
                String::new(),
                None,
                None,
            );
            classify_minio("object o", MinioError::S3Server(S3ServerError::S3Error(Box::new(response)))).kind
        };
        for code in [
            "ServiceUnavailable",
            "InternalError",
            "SlowDown",
            "SlowDownWrite",
            "XMinioStorageFull",
            "RequestTimeout",
            "RequestTimeTooSkewed",
            "XMinioServerNotInitialized",
        ] {
            assert_eq!(kind_of(code), StoreErrorKind::Unavailable, "{code}");
        }
        assert_eq!(kind_of("XAmzContentSHA256Mismatch"), StoreErrorKind::ChecksumMismatch);
        assert_eq!(kind_of("AccessDenied"), StoreErrorKind::AccessDenied);
        assert_eq!(kind_of("NoSuchBucket"), StoreErrorKind::NoSuchBucket);
        assert_eq!(kind_of("InvalidArgument"), StoreErrorKind::Refused);
        assert_eq!(kind_of("NoSuchKey"), StoreErrorKind::NotFound);
        // The message names the code as MinIO sent it, not as the SDK lowercased it.
        let response = MinioErrorResponse::new(
            Default::default(),
            MinioErrorCode::from_str("SlowDownWrite").unwrap(),
            Some("Resource requested is unwritable, please reduce your request rate".into()),
            String::new(),
            String::new(),
            String::new(),
            None,
            None,
        );
        let error = classify_answer(
            "object o",
            MinioError::S3Server(S3ServerError::S3Error(Box::new(response))),
            Some(503),
        );
        assert!(error.message.contains("HTTP 503 SlowDownWrite: "), "{}", error.message);
        let bodiless = MinioErrorResponse::from_status_and_message(503, "Service Unavailable".into());
        let kind =
            classify_minio("object o", MinioError::S3Server(S3ServerError::S3Error(Box::new(bodiless)))).kind;
        assert_eq!(kind, StoreErrorKind::Unavailable);
    }

    /// Issue 15: a missing object is a kind of its own (no longer found by "NoSuchKey" in the
    /// message), and each kind's reason is handled as the error's own class says.
    #[test]
    fn each_kind_has_its_reason_and_a_missing_object_is_not_found() {
        use crate::error::Reason;
        crate::error::check_reasons(
            [
                (StoreErrorKind::Unavailable, Reason::S3Unavailable),
                (StoreErrorKind::NoSuchBucket, Reason::S3NoBucket),
                (StoreErrorKind::AccessDenied, Reason::S3AccessDenied),
                (StoreErrorKind::ChecksumMismatch, Reason::S3ChecksumRejected),
                (StoreErrorKind::LocalFile, Reason::LocalChanged),
                (StoreErrorKind::LocalFileMissing, Reason::LocalMissing),
                (StoreErrorKind::AlreadyExists, Reason::ObjectConflict),
                (StoreErrorKind::NotFound, Reason::S3Refused),
                (StoreErrorKind::Refused, Reason::S3Refused),
                (StoreErrorKind::NotEncrypted, Reason::S3Refused),
            ]
            .map(|(kind, reason)| (StoreError::new(kind, "object o"), reason)),
        );
        use minio::s3::minio_error_response::MinioErrorResponse;
        let head_404 = MinioErrorResponse::from_status_and_message(404, String::new());
        let error =
            classify_minio("object o", MinioError::S3Server(S3ServerError::S3Error(Box::new(head_404))));
        assert_eq!(error.kind, StoreErrorKind::NotFound, "{error}");
    }
}
