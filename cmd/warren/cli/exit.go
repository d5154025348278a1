package cli

import "errors"

// ExitError asks main for an exit status other than 1. A command whose
// answer is itself a status (`warren policy why` exits 1 for a denial, 2
// for a question it cannot answer) returns one.
type ExitError struct {
	Status int
	// Err is shown as usual; nil when the command has already printed
	// everything there is to say.
	Err error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitStatus is the process exit status for a command's error: 0 for nil,
// an ExitError's Status, 1 for any other error.
func ExitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Status
	}
	return 1
}
