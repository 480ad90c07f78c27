//! The one error type of secret operations, with AWS's exception names as kinds.
//!
//! Messages never contain secret values: they name secrets, versions and labels only.

use std::fmt;

/// What went wrong, named after the AWS Secrets Manager exception a client expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The secret, version or label does not exist.
    ResourceNotFound,
    /// A secret with this name exists, or a version id is reused with another value.
    ResourceExists,
    /// A parameter has a value the operation does not accept.
    InvalidParameter,
    /// The request is not valid in the secret's current state (e.g. scheduled for deletion).
    InvalidRequest,
    /// A field breaks a length, count or pattern constraint.
    Validation,
    /// The `NextToken` given is not one this server issued.
    InvalidNextToken,
    /// A quota (e.g. labels per version) would be exceeded.
    LimitExceeded,
    /// The caller lacks permission.
    AccessDenied,
    /// The caller's credentials are missing, unknown, expired or revoked.
    Unauthenticated,
    /// The store or another internal component failed; details are logged, not sent.
    Internal,
}

impl ErrorKind {
    /// The AWS exception name, used as `__type` on the AWS API.
    pub fn aws_type(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceExists => "ResourceExistsException",
            ErrorKind::InvalidParameter => "InvalidParameterException",
            ErrorKind::InvalidRequest => "InvalidRequestException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::InvalidNextToken => "InvalidNextTokenException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::Unauthenticated => "UnrecognizedClientException",
            ErrorKind::Internal => "InternalServiceError",
        }
    }

    /// The kind whose [`aws_type`](Self::aws_type) is `name`.
    pub fn from_aws_type(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.aws_type() == name)
    }

    /// Every kind (a new one goes here too, beside [`aws_type`](Self::aws_type)).
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::ResourceNotFound,
        ErrorKind::ResourceExists,
        ErrorKind::InvalidParameter,
        ErrorKind::InvalidRequest,
        ErrorKind::Validation,
        ErrorKind::InvalidNextToken,
        ErrorKind::LimitExceeded,
        ErrorKind::AccessDenied,
        ErrorKind::Unauthenticated,
        ErrorKind::Internal,
    ];
}

/// An operation's failure: a kind and a message fit to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// A human-readable explanation, free of secret values.
    pub message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    /// `ResourceNotFoundException`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }
    /// `InvalidParameterException`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    /// `InvalidRequestException`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }
    /// `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
    /// `ResourceExistsException`.
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceExists, message)
    }
    /// An internal failure; `message` must not leak details to clients.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.aws_type(), self.message)
    }
}

impl std::error::Error for Error {}

/// Shorthand for results of secret operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn every_kind_is_found_by_its_aws_name() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_aws_type(kind.aws_type()), Some(kind));
        }
        assert_eq!(ErrorKind::from_aws_type("NoSuchException"), None);
    }
}
