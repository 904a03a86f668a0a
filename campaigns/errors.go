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

// maxQuoted is how much of a value a problem quotes, and maxListed how many
// problems of one file are listed. A YAML alias of a long value repeated in
// a list (a 760 KB file: 80,000 aliases of a 200 KB string in
// targeting.countries) made a message quoting the whole value for each
// element: 16 GB, and the process ran out of memory.
const (
	maxQuoted = 100
	maxListed = 50
)

func (p problems) add(path, format string, args ...any) {
	for i, a := range args {
		var s string
		switch v := a.(type) {
		case string:
			s = v
		case Amount:
			s = string(v)
		default:
			continue
		}
		if len(s) > maxQuoted {
			args[i] = s[:maxQuoted] + "..."
		}
	}
	*p.list = append(*p.list, &Problem{File: p.file, Path: path, Reason: fmt.Sprintf(format, args...)})
}

// joinProblems joins the problems (sorted by file), listing at most
// maxListed of a file and then how many more it has.
func joinProblems(list []error) error {
	if len(list) == 0 {
		return nil
	}
	out := []error{ErrInvalid}
	for i := 0; i < len(list); {
		f := problemFile(list[i])
		j := i
		for j < len(list) && problemFile(list[j]) == f {
			j++
		}
		if j-i > maxListed {
			out = append(out, list[i:i+maxListed]...)
			out = append(out, &Problem{File: f, Reason: fmt.Sprintf("%d more problems not listed", j-i-maxListed)})
		} else {
			out = append(out, list[i:j]...)
		}
		i = j
	}
	return errors.Join(out...)
}
