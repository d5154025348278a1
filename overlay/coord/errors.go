package coord

import (
	"fmt"

	"github.com/warrennet/warren/overlay/wire"
)

// errorf returns a *wire.Error with code and a formatted one-line message,
// fit to show an admin as is.
func errorf(code, format string, args ...any) error {
	return &wire.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// invalid wraps err, whose text is already fit for a person, as bad input.
func invalid(err error) error {
	return &wire.Error{Code: wire.CodeInvalid, Message: err.Error()}
}
