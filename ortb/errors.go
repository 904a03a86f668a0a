package ortb

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error Parse and Gunzip return wraps exactly one of
// them, so callers map them to HTTP statuses with errors.Is: ErrMalformed and
// ErrInvalid to 400, ErrTooLarge to 413.
var (
	// ErrMalformed: the body is not JSON (or not gzip, for Gunzip).
	ErrMalformed = errors.New("ortb: malformed request")
	// ErrInvalid: well-formed JSON that is not a usable bid request: a missing
	// id or imp, an imp without id, or a wrongly typed field the bidder reads.
	ErrInvalid = errors.New("ortb: invalid request")
	// ErrTooLarge: the decompressed body exceeds the caller's limit.
	ErrTooLarge = errors.New("ortb: request too large")
)

// FieldError is an ErrInvalid naming the offending JSON path, for example
// Path "imp[0].bidfloor" and Reason "want number, got string". It is built only
// on the error path.
type FieldError struct {
	Path   string
	Reason string
}

// Error returns one lowercase line: "ortb: invalid request: PATH: REASON".
func (e *FieldError) Error() string {
	if e.Path == "" {
		return ErrInvalid.Error() + ": " + e.Reason
	}
	return ErrInvalid.Error() + ": " + e.Path + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// fieldErr starts a FieldError at the object member key.
func fieldErr(key []byte, reason string) error {
	return &FieldError{Path: string(key), Reason: reason}
}

// within prefixes the path of a FieldError returned from inside member key.
// It costs nothing when err is nil.
func within(key string, err error) error {
	if err == nil {
		return nil
	}
	fe, ok := err.(*FieldError)
	if !ok {
		return err
	}
	switch {
	case fe.Path == "":
		fe.Path = key
	case fe.Path[0] == '[':
		fe.Path = key + fe.Path
	default:
		fe.Path = key + "." + fe.Path
	}
	return err
}

// withinIndex prefixes the path of a FieldError returned from array element i.
func withinIndex(i int, err error) error {
	if err == nil {
		return nil
	}
	return within("["+strconv.Itoa(i)+"]", err)
}
