//! How the SDK's errors map onto `StoreErrorKind`: what is an outage, a refusal, a checksum
//! mismatch or a taken name.

use minio::s3::error::{Error as MinioError, NetworkError, S3ServerError, ValidationErr};
use minio::s3::types::ObjectKey;

use crate::store::{StoreError, StoreErrorKind};

pub(super) fn map_validation(key: &ObjectKey, e: ValidationErr) -> StoreError {
    classify_minio(&format!("object {key}"), MinioError::Validation(e))
}

/// Maps an SDK error onto our kinds, naming `what` (the object or bucket) in the message.
pub(super) fn classify_minio(what: &str, error: MinioError) -> StoreError {
    let (kind, detail) = match &error {
        MinioError::Network(NetworkError::ServerError(status)) => {
            (StoreErrorKind::Unavailable, format!("server answered HTTP {status}"))
        }
        MinioError::Network(NetworkError::ReqwestError(e)) => {
            (StoreErrorKind::Unavailable, describe_reqwest(e))
        }
        MinioError::Validation(ValidationErr::HttpError(e)) => {
            (StoreErrorKind::Unavailable, describe_reqwest(e))
        }
        MinioError::S3Server(S3ServerError::S3Error(response)) => {
            let code = response.code().to_string();
            let message = response.message().clone().unwrap_or_default();
            (classify_s3_code(&code, &message), format!("{code}: {message}"))
        }
        MinioError::S3Server(S3ServerError::HttpError(status, body))
        | MinioError::S3Server(S3ServerError::InvalidServerResponse {
            http_status_code: status,
            message: body,
            ..
        }) => {
            let kind = if *status >= 500 {
                StoreErrorKind::Unavailable
            } else if *status == 412 {
                StoreErrorKind::AlreadyExists
            } else if body.to_ascii_lowercase().contains("checksum") {
                StoreErrorKind::ChecksumMismatch
            } else {
                StoreErrorKind::Refused
            };
            (kind, format!("HTTP {status}: {body}"))
        }
        MinioError::DriveIo(e) => (StoreErrorKind::LocalFile, e.to_string()),
        MinioError::Validation(e) => (StoreErrorKind::Refused, e.to_string()),
    };
    StoreError::new(kind, format!("{what}: {detail}"))
}

/// The kind of an S3 error response by its code. Compared lowercased: the SDK keeps the case of
/// the few codes it knows and lowercases every other one (`InternalError` arrives as
/// `internalerror`), which once made a server's "try again" look like a refusal.
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
        // S3's and MinIO's "try again": overload, restarts, lost quorum.
        "internalerror"
        | "serviceunavailable"
        | "slowdown"
        | "requesttimeout"
        | "xminioservernotinitialized"
        | "xminioreadquorum"
        | "xminiowritequorum" => StoreErrorKind::Unavailable,
        // The SDK's code for an error answer without a body: "HTTP <status>".
        _ if code.starts_with("http 5") => StoreErrorKind::Unavailable,
        _ if message.to_ascii_lowercase().contains("checksum") => StoreErrorKind::ChecksumMismatch,
        _ => StoreErrorKind::Refused,
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
            "RequestTimeout",
            "XMinioServerNotInitialized",
        ] {
            assert_eq!(kind_of(code), StoreErrorKind::Unavailable, "{code}");
        }
        assert_eq!(kind_of("XAmzContentSHA256Mismatch"), StoreErrorKind::ChecksumMismatch);
        assert_eq!(kind_of("AccessDenied"), StoreErrorKind::AccessDenied);
        assert_eq!(kind_of("NoSuchBucket"), StoreErrorKind::NoSuchBucket);
        assert_eq!(kind_of("InvalidArgument"), StoreErrorKind::Refused);
        assert_eq!(kind_of("NoSuchKey"), StoreErrorKind::NotFound);
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
