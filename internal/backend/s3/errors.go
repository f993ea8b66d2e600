package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/minio/minio-go/v7"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// bucketMissing is the error that says the bucket does not exist.
type bucketMissing struct{ msg string }

func (e *bucketMissing) Error() string { return e.msg }

// transientCodes are S3 error codes that a later attempt may not meet,
// though some come with a 4xx status.
var transientCodes = map[string]bool{
	"RequestTimeout":             true, // 400: the upload was too slow
	"BadDigest":                  true, // 400: the body was damaged on the way
	"XAmzContentSHA256Mismatch":  true,
	"IncompleteBody":             true,
	"SlowDown":                   true,
	"ServiceUnavailable":         true,
	"InternalError":              true,
	"OperationAborted":           true, // 409: a conflicting operation was in progress
	"ConditionalRequestConflict": true,
}

// classify turns a minio-go error into one that says what happened and
// whether retrying can help: ErrNotFound and ErrExists where they apply,
// MarkPermanent for what the same request meets again.
func (b *Backend) classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var unknownCA x509.UnknownAuthorityError
	var badCert x509.CertificateInvalidError
	var badHost x509.HostnameError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &badCert) || errors.As(err, &badHost) || errors.As(err, &verify) {
		return backend.MarkPermanent(fmt.Errorf("the TLS certificate of %s is not trusted (%v): give the CA that signed it with --cacert or %s, or use s3:http:// where plain http is meant", b.loc.Endpoint, err, EnvCACert))
	}
	resp := minio.ToErrorResponse(err)
	if resp.Code == "" && resp.StatusCode == 0 {
		return err // a network failure: transient
	}
	server := b.loc.Endpoint
	switch resp.Code {
	case minio.NoSuchKey:
		return backend.ErrNotFound
	case minio.PreconditionFailed:
		return backend.ErrExists
	case minio.NoSuchBucket:
		return backend.MarkPermanent(&bucketMissing{fmt.Sprintf("bucket %q does not exist at %s; create it first (stillpoint does not create buckets)", b.loc.Bucket, server)})
	case "InvalidAccessKeyId":
		return backend.MarkPermanent(fmt.Errorf("wrong credentials for %s: the access key %q is not known to the server (check AWS_ACCESS_KEY_ID or the profile's aws_access_key_id)", server, b.accessKey()))
	case "SignatureDoesNotMatch":
		return backend.MarkPermanent(fmt.Errorf("wrong credentials for %s: the secret key does not match the access key %q (check AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key)", server, b.accessKey()))
	case "InvalidToken", "ExpiredToken", "TokenRefreshRequired":
		return backend.MarkPermanent(fmt.Errorf("wrong credentials for %s: the session token is invalid or expired (%s; check AWS_SESSION_TOKEN)", server, resp.Message))
	case "AccessDenied", "AllAccessDisabled":
		return backend.MarkPermanent(&denied{fmt.Sprintf("access denied by %s to bucket %q: the credentials of access key %q lack the permission for this request (%s)", server, b.loc.Bucket, b.accessKey(), resp.Message)})
	case "RequestTimeTooSkewed":
		return backend.MarkPermanent(fmt.Errorf("%s refuses the request because this machine's clock differs too much from the server's: set the clock right (NTP)", server))
	case "AuthorizationHeaderMalformed", "InvalidRegion", "PermanentRedirect", "IllegalLocationConstraintException":
		return backend.MarkPermanent(fmt.Errorf("%s: the region does not match bucket %q (%s); set --s3-region or %s", server, b.loc.Bucket, resp.Message, EnvRegion))
	case minio.NotImplemented:
		return backend.MarkPermanent(fmt.Errorf("%s does not implement a request stillpoint needs: %s", server, resp.Message))
	}
	if transientCodes[resp.Code] {
		return fmt.Errorf("%s: %s (%s)", server, resp.Message, resp.Code)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return fmt.Errorf("%s: %s (%s)", server, resp.Message, resp.Code)
	case resp.StatusCode >= 300:
		return backend.MarkPermanent(fmt.Errorf("%s refuses the request: %s (%s, HTTP %d)", server, resp.Message, resp.Code, resp.StatusCode))
	}
	return err
}

// denied is an AccessDenied answer: errors.Is(err, backend.ErrDenied)
// holds, so the repository can tell append-only credentials.
type denied struct{ msg string }

func (e *denied) Error() string        { return e.msg }
func (e *denied) Is(target error) bool { return target == backend.ErrDenied }

// code returns the S3 error code of err, if it has one.
func code(err error) string { return minio.ToErrorResponse(err).Code }
