package campaigns

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every configuration error from LoadDir, Compile,
// NewStore and Store.Reload.
var ErrInvalid = errors.New("campaigns: invalid configuration")

// Problem is one configuration problem: the file, the field path inside it
// (creatives[1].sizes[0]) and the reason.
type Problem struct {
	File   string
	Path   string
	Reason string
}

func (p *Problem) Error() string {
	switch {
	case p.File == "":
		return p.Path + ": " + p.Reason
	case p.Path == "":
		return p.File + ": " + p.Reason
	}
	return p.File + ": " + p.Path + ": " + p.Reason
}

// Problems lists the problems inside an error returned by this package.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if u := errors.Unwrap(e); u != nil {
			walk(u)
		}
	}
	walk(err)
	return out
}

// problems collects Problems for one file.
type problems struct {
	file string
	list *[]error
}

func (p problems) add(path, format string, args ...any) {
	*p.list = append(*p.list, &Problem{File: p.file, Path: path, Reason: fmt.Sprintf(format, args...)})
}

func joinProblems(list []error) error {
	if len(list) == 0 {
		return nil
	}
	return errors.Join(append([]error{ErrInvalid}, list...)...)
}
