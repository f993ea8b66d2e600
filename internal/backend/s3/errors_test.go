package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

func TestClassify(t *testing.T) {
	b := &Backend{loc: Location{Endpoint: "s3.example.com", Bucket: "bkt"}, access: "AKID"}
	resp := func(code string, status int) error {
		return minio.ErrorResponse{Code: code, StatusCode: status, Message: "the server's words"}
	}
	for _, c := range []struct {
		err       error
		permanent bool
		is        error
		says      string
	}{
		{resp("NoSuchKey", 404), true, backend.ErrNotFound, ""},
		{resp("PreconditionFailed", 412), true, backend.ErrExists, ""},
		{resp("NoSuchBucket", 404), true, nil, `bucket "bkt" does not exist at s3.example.com`},
		{resp("InvalidAccessKeyId", 403), true, nil, `the access key "AKID" is not known to the server`},
		{resp("SignatureDoesNotMatch", 403), true, nil, "the secret key does not match"},
		{resp("ExpiredToken", 400), true, nil, "AWS_SESSION_TOKEN"},
		{resp("AccessDenied", 403), true, nil, "lack the permission"},
		{resp("RequestTimeTooSkewed", 403), true, nil, "clock"},
		{resp("AuthorizationHeaderMalformed", 400), true, nil, EnvRegion},
		{resp("InvalidArgument", 400), true, nil, "refuses the request"},
		{resp("MethodNotAllowed", 405), true, nil, "refuses the request"},
		{resp("BadDigest", 400), false, nil, ""},
		{resp("RequestTimeout", 400), false, nil, ""},
		{resp("SlowDown", 503), false, nil, ""},
		{resp("InternalError", 500), false, nil, ""},
		{resp("", 502), false, nil, ""},
		{resp("TooManyRequests", http.StatusTooManyRequests), false, nil, ""},
		{fmt.Errorf("dial tcp: connection refused"), false, nil, "connection refused"},
		{context.Canceled, true, context.Canceled, ""},
	} {
		got := b.classify(c.err)
		if backend.Permanent(got) != c.permanent {
			t.Errorf("%v: permanent %v, want %v (%v)", c.err, backend.Permanent(got), c.permanent, got)
		}
		if c.is != nil && !errors.Is(got, c.is) {
			t.Errorf("%v: %v is not %v", c.err, got, c.is)
		}
		if c.says != "" && !strings.Contains(got.Error(), c.says) {
			t.Errorf("%v: %q does not say %q", c.err, got, c.says)
		}
	}
}
