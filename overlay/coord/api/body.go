package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/warrennet/warren/overlay/wire"
)

// decodeStrict decodes one JSON value from r into v: unknown fields and
// anything after the value are errors.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON body")
	}
	// A second value's stray bytes that More does not report (a closing
	// bracket, say) are trailing data too.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			return errors.New("trailing data after the JSON body")
		}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return fmt.Errorf("trailing data after the JSON body: %w", err)
	}
	return nil
}

// tooLarge answers 413 for a body over limit bytes.
func (s *Server) tooLarge(w http.ResponseWriter, limit int64) {
	s.reply(w, http.StatusRequestEntityTooLarge, &wire.Error{Code: wire.CodeInvalid,
		Message: fmt.Sprintf("request body is larger than the coordinator's limit of %d KiB", limit>>10)})
}
